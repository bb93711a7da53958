"""The IR-SE ResNet backbone and the style heads of the pSp / e4e / ReStyle encoders, in pure PyTorch.

Module and parameter names follow the official implementations (pixel2style2pixel, encoder4editing,
restyle-encoder), so their checkpoints' `encoder.*` tensors load as they are. Inference only: BatchNorm runs
in eval mode with the stored running statistics. Images [B, C, 256, 256] in [-1, 1] (C = 3, or 6 for ReStyle:
the target and the current reconstruction stacked) -> codes [B, n_styles, 512] relative to the start code.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..stylegan2 import EqualLinear

# Units per stage of the official backbones; the first unit of every stage has stride 2.
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
WIDTHS = (64, 128, 256, 512)  # IR-SE50: stem 64, stage widths; the style codes are 512 wide
_COARSE, _MIDDLE = 3, 7  # style index where the middle / fine feature maps take over


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class BottleneckIR(nn.Module):
    """Pre-activation residual unit: BN, 3x3 conv, PReLU, 3x3 conv (strided), BN (, squeeze-excite)."""

    def __init__(self, c_in: int, depth: int, stride: int, se: bool = True):
        super().__init__()
        if c_in == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)  # a 1x1 max-pool: plain subsampling
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(c_in, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        layers = [nn.BatchNorm2d(c_in), nn.Conv2d(c_in, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
                  nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth)]
        if se:
            layers.append(SqueezeExcite(depth))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """Input layer (3x3 conv, BN, PReLU) and the residual body. x [B, C, 256, 256] -> feature maps.

    `units` per stage and `widths` default to IR-SE50's; other sizes (read from a checkpoint's tensors) build
    the same network narrower or deeper.
    """

    def __init__(self, input_nc: int = 3, units: tuple[int, ...] = STAGE_UNITS[50],
                 widths: tuple[int, ...] = WIDTHS, stem: int = 64, se: bool = True):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(input_nc, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem),
                                         nn.PReLU(stem))
        blocks, c_in, self.stage_ends = [], stem, []
        for n, depth in zip(units, widths):
            blocks.append(BottleneckIR(c_in, depth, 2, se))
            blocks += [BottleneckIR(depth, depth, 1, se) for _ in range(n - 1)]
            c_in = depth
            self.stage_ends.append(len(blocks) - 1)
        self.body = nn.Sequential(*blocks)

    def taps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c1, c2, c3): outputs of stages 2, 3 and 4 (64x64, 32x32, 16x16 for 256-px input; units 6, 20, 23
        of IR-SE50), the levels of the feature pyramid."""
        x = self.input_layer(x)
        ends, out = self.stage_ends[1:], []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in ends:
                out.append(x)
        return out[0], out[1], out[2]

    def last(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_layer(x))


class GradualStyleBlock(nn.Module):
    """`n_convs` strided 3x3 convs (LeakyReLU 0.01) down to 1x1 (log2 of the input map's size), then an
    equalized linear."""

    def __init__(self, c_in: int, c_out: int, n_convs: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(c_out, c_out)
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(-1, self.c_out))


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class _Encoder(nn.Module):
    """Shared constructor. `arch`: input_nc, units, widths, stem, se, n_styles, w_dim (see `IRBackbone`)."""

    def __init__(self, arch: dict):
        super().__init__()
        backbone = IRBackbone(arch["input_nc"], arch["units"], arch["widths"], arch["stem"], arch["se"])
        self.input_layer, self.body = backbone.input_layer, backbone.body  # official names: no extra prefix
        self._backbone = [backbone]  # in a list so its modules are not registered twice
        self.n_styles, self.w_dim, self.width = arch["n_styles"], arch["w_dim"], arch["widths"][-1]

    @property
    def backbone(self) -> IRBackbone:
        return self._backbone[0]


class _FPN(_Encoder):
    def __init__(self, arch: dict):
        super().__init__(arch)
        n_convs = (4, 5, 6)  # 16x16, 32x32, 64x64 maps down to 1x1
        self.styles = nn.ModuleList(
            GradualStyleBlock(self.width, self.w_dim, n_convs[0 if i < _COARSE else 1 if i < _MIDDLE else 2])
            for i in range(self.n_styles))
        self.latlayer1 = nn.Conv2d(arch["widths"][2], self.width, 1)
        self.latlayer2 = nn.Conv2d(arch["widths"][1], self.width, 1)


class GradualStyleEncoder(_FPN):
    """pSp: every style from its own level of a feature pyramid (coarse 16x16, middle 32x32, fine 64x64)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.backbone.taps(x)
        p2 = _upsample_add(c3, self.latlayer1(c2))
        p1 = _upsample_add(p2, self.latlayer2(c1))
        feats = [c3 if i < _COARSE else p2 if i < _MIDDLE else p1 for i in range(self.n_styles)]
        return torch.stack([s(f) for s, f in zip(self.styles, feats)], dim=1)


class Encoder4Editing(_FPN):
    """e4e: one code w0 from the coarse map for every layer, plus a delta per layer from the pyramid (all
    deltas active: the inference stage)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.backbone.taps(x)
        w0 = self.styles[0](c3)
        out, feats = [w0], c3
        for i in range(1, self.n_styles):
            if i == _COARSE:
                feats = p2 = _upsample_add(c3, self.latlayer1(c2))
            elif i == _MIDDLE:
                feats = _upsample_add(p2, self.latlayer2(c1))
            out.append(w0 + self.styles[i](feats))
        return torch.stack(out, dim=1)


class BackboneEncoder(_Encoder):
    """ReStyle (pSp flavour): every style from the last 16x16 feature map."""

    def __init__(self, arch: dict):
        super().__init__(arch)
        self.styles = nn.ModuleList(GradualStyleBlock(self.width, self.w_dim, 4) for _ in range(self.n_styles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone.last(x)
        return torch.stack([s(f) for s in self.styles], dim=1)


class ProgressiveBackboneEncoder(BackboneEncoder):
    """ReStyle (e4e flavour): w0 from the first style block for every layer, plus a delta per layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone.last(x)
        w0 = self.styles[0](f)
        return torch.stack([w0] + [w0 + s(f) for s in self.styles[1:]], dim=1)


class BackboneEncoderUsingLastLayerIntoW(_Encoder):
    """pSp / e4e single-code encoder: global average pool of the last map, one equalized linear -> W."""

    def __init__(self, arch: dict):
        super().__init__(arch)
        self.linear = EqualLinear(self.width, self.w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear(self.backbone.last(x).mean((2, 3)))
        return w[:, None].expand(-1, self.n_styles, -1)


class BackboneEncoderUsingLastLayerIntoWPlus(_Encoder):
    """pSp: BN, 7x7 average pool, linear to w_dim, equalized linear to n_styles x w_dim."""

    def __init__(self, arch: dict):
        super().__init__(arch)
        self.output_layer_2 = nn.Sequential(nn.BatchNorm2d(self.width), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
                                            nn.Linear(self.width * 49, self.w_dim))
        self.linear = EqualLinear(self.w_dim, self.w_dim * self.n_styles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.output_layer_2(self.backbone.last(x))).view(-1, self.n_styles, self.w_dim)


ENCODER_TYPES = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "Encoder4Editing": Encoder4Editing,
    "BackboneEncoder": BackboneEncoder,
    "ProgressiveBackboneEncoder": ProgressiveBackboneEncoder,
    "BackboneEncoderUsingLastLayerIntoW": BackboneEncoderUsingLastLayerIntoW,
    "SingleStyleCodeEncoder": BackboneEncoderUsingLastLayerIntoW,  # e4e's name for the same network
    "BackboneEncoderUsingLastLayerIntoWPlus": BackboneEncoderUsingLastLayerIntoWPlus,
}
