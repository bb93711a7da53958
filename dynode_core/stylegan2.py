"""A pure-PyTorch StyleGAN2 generator (no compiled extensions).

Parameter names follow rosinality/stylegan2-pytorch's `model.py`, so its checkpoints load as they are;
other formats are converted to these names by `dynode_core.checkpoints`. Every size (resolution, channels
per resolution, mapping depth) is a constructor argument, so any checkpoint's layout can be rebuilt from
its tensors.

Shapes: z [B, z_dim], w [B, w_dim], ws [B, num_ws, w_dim], images [B, 3, H, W] in about [-1, 1].
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NOISE_MODES = ("const", "random", "none")


def _make_kernel(k: Sequence[float]) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0),
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """Upsample by zero insertion, pad, then filter with `kernel` [kh, kw] (a true convolution), then add the
    per-channel `bias` [C] if given. x [B, C, H, W]."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    k = kernel.flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    if up == 1 and pad[0] == pad[1] >= 0:  # the convolution pads without a padded copy of x
        return F.conv2d(x, k, bias, padding=pad[0], groups=c)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, k, bias, groups=c)


def _lrelu(x: torch.Tensor, bias: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    shape = [1, -1] + [1] * (x.ndim - 2)
    x = F.leaky_relu(x + bias.view(shape).to(x.dtype), 0.2) * math.sqrt(2)
    return x.clamp(-clamp, clamp) if clamp is not None else x


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored as N(0, 1/lr_mul), scaled at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.scale).to(x.dtype)
        if self.activation:
            return _lrelu(F.linear(x, w), self.bias * self.lr_mul)
        return F.linear(x, w, (self.bias * self.lr_mul).to(x.dtype))


class Blur(nn.Module):
    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", _make_kernel(kernel) * upsample_factor**2, persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad, bias=bias)


class Upsample(nn.Module):
    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", _make_kernel(kernel) * factor**2, persistent=False)
        p = len(kernel) - factor
        self.factor = factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Modulated (and optionally demodulated) convolution, optionally upsampling ×2 first.

    Modulation is applied to activations rather than to a per-sample weight ("non-fused"), which is the
    same function and runs as one ordinary convolution for the whole batch.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, w_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.padding = kernel_size // 2
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.modulation(w)  # [B, in]
        weight = (self.weight[0] * self.scale).to(x.dtype)  # [out, in, k, k]
        x = x * s[:, :, None, None]
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            w2 = weight.float().square().sum(dim=[2, 3])  # [out, in]
            d = torch.rsqrt(s.float().square() @ w2.t() + 1e-8)  # [B, out]
            x = x * d.to(x.dtype)[:, :, None, None]
        if self.upsample:
            x = self.blur(x)
        return x


    def _weight_sq(self) -> torch.Tensor:
        """Σ over the kernel of weight² [out, in] (float32), kept between calls while the weight is unchanged
        and no gradient is wanted for it."""
        weight = self.weight
        if weight.requires_grad and torch.is_grad_enabled():
            return weight[0].float().square().sum(dim=[2, 3])
        try:
            key = (weight._version, weight.data_ptr(), weight.dtype, weight.device)
        except RuntimeError:  # an inference tensor has no version counter
            key = None
        cached = self.__dict__.get("_wsq")
        if key is None or cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # a normal tensor: autograd may save it later
                cached = (key, weight[0].float().square().sum(dim=[2, 3]))
            if key is not None:
                self.__dict__["_wsq"] = cached
        return cached[1]

    def fused(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
              gain: float = 1.0) -> torch.Tensor:
        """`gain * (forward(x, w) + bias)` with style, demodulation and gain folded into one per-sample weight.

        Folding costs a pass over the weight (out·in·k² per sample) and saves one over the input (in·H·W), so
        it is done only where the weight is the smaller of the two, and not under autograd (a per-sample weight
        that depends on the style would add a weight-gradient convolution to every backward pass). Otherwise
        the style scales the input and demodulation, gain and bias are one pass after the convolution.
        Batches > 1 with a folded weight run as one grouped convolution.
        """
        b, cin, h, wd = x.shape
        weight = self.weight[0].to(x.dtype)  # [out, in, k, k]
        cout, k = weight.shape[0], weight.shape[-1]
        s = self.modulation(w) * self.scale  # [B, in]
        g = torch.full((b, cout), gain, dtype=torch.float32, device=x.device)
        if self.demodulate:
            g = g * torch.rsqrt(s.float().square() @ self._weight_sq().t() + 1e-8)  # [B, out]
        g = g.to(x.dtype)
        bias = None if bias is None else (bias * gain).to(x.dtype)
        track = torch.is_grad_enabled() and (x.requires_grad or s.requires_grad)
        if b == 0 or track or cout * k * k > h * wd:  # style the input, scale the output
            x = x * s[:, :, None, None].to(x.dtype)
            if self.upsample:
                x = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
            else:
                x = F.conv2d(x, weight, padding=self.padding)
            if bias is None:
                return x * g[:, :, None, None]
            return torch.addcmul(bias.view(1, -1, 1, 1), x, g[:, :, None, None])
        wb = weight[None] * (g[:, :, None] * s.to(x.dtype)[:, None, :])[..., None, None]  # [B, out, in, k, k]
        if b == 1:
            if self.upsample:
                return self.blur(F.conv_transpose2d(x, wb[0].transpose(0, 1), stride=2), bias)
            return F.conv2d(x, wb[0], bias, padding=self.padding)
        x = x.reshape(1, b * cin, h, wd)
        if self.upsample:
            x = F.conv_transpose2d(x, wb.transpose(1, 2).reshape(b * cin, cout, k, k), stride=2, groups=b)
            return self.blur(x.reshape(b, cout, *x.shape[2:]), bias)
        x = F.conv2d(x, wb.reshape(b * cout, cin, k, k), None if bias is None else bias.repeat(b),
                     padding=self.padding, groups=b)
        return x.reshape(b, cout, h, wd)


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return x if noise is None else x + self.weight.to(x.dtype) * noise.to(x.dtype)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int, clamp: float | None = None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _lrelu(x, self.bias, self.clamp)


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, w_dim: int, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, w_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch, clamp=conv_clamp)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None, fused: bool = True) -> torch.Tensor:
        if not fused:
            return self.activate(self.noise(self.conv(x, w), noise))
        # sqrt(2)·lrelu(y + b + n) = lrelu(sqrt(2)·(y + b + n)): the gain goes into the weight and the bias
        gain = math.sqrt(2)
        x = self.conv.fused(x, w, self.activate.bias, gain)
        if noise is not None:  # in place is safe: the convolution does not keep its output for backward
            x.addcmul_(noise.to(x.dtype), self.noise.weight.to(x.dtype) * gain)
        x = F.leaky_relu_(x, 0.2)  # autograd keeps the result, which nothing below modifies in place
        c = self.activate.clamp
        if c is not None:
            x = x.clamp(-c, c) if x.requires_grad else x.clamp_(-c, c)
        return x


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, w_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None,
                fused: bool = True) -> torch.Tensor:
        if not fused:
            out = self.conv(x, w) + self.bias.to(x.dtype)
            if self.clamp is not None:
                out = out.clamp(-self.clamp, self.clamp)
            if skip is not None:
                out = out + self.upsample(skip)
            return out
        # a 1x1 modulated convolution is a batched matrix product [B, 3, in] @ [B, in, H·W]
        b, cin, h, wd = x.shape
        conv = self.conv
        s = (conv.modulation(w) * conv.scale).to(x.dtype)  # [B, in]
        wb = conv.weight[0, :, :, 0, 0].to(x.dtype)[None] * s[:, None, :]  # [B, 3, in]
        up = self._upsample_skip(skip) if skip is not None else None
        if self.clamp is None and up is not None:
            return torch.baddbmm((up + self.bias.to(x.dtype)).view(b, 3, h * wd), wb,
                                 x.reshape(b, cin, h * wd)).view(b, 3, h, wd)
        out = torch.baddbmm(self.bias.to(x.dtype).view(1, 3, 1), wb, x.reshape(b, cin, h * wd)).view(b, 3, h, wd)
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp) if out.requires_grad else out.clamp_(-self.clamp, self.clamp)
        return out if up is None else out + up

    def _upsample_skip(self, skip: torch.Tensor) -> torch.Tensor:
        """`self.upsample(skip)` as one strided transposed convolution (no zero-inserted copy to filter)."""
        up = self.upsample
        k = up.kernel.to(skip.dtype)
        c, kh = skip.shape[1], k.shape[0]
        if up.factor != 2 or kh != 4 or up.pad != (2, 1):
            return up(skip)
        return F.conv_transpose2d(skip, k.flip([0, 1])[None, None].expand(c, 1, kh, kh), stride=2, padding=1, groups=c)


def default_channels(resolution: int, channel_multiplier: int = 2, channel_max: int = 512) -> dict[int, int]:
    """rosinality's channel table (channel_multiplier 2 is FFHQ config-f)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    out = {}
    for r in (2**i for i in range(2, int(math.log2(resolution)) + 1)):
        c = base.get(r, 16) * (channel_multiplier if r >= 64 else 1)
        out[r] = min(c, channel_max)
    return out


class Generator(nn.Module):
    """StyleGAN2 generator: `mapping` (z -> w) and `synthesis` (ws -> image).

    Args:
        resolution: output size, a power of two ≥ 4.
        z_dim, w_dim: latent sizes. n_mlp: mapping depth. lr_mlp: mapping learning-rate multiplier.
        channels: feature maps per resolution {4: c4, 8: c8, ...}; defaults to rosinality's table.
        conv_clamp: activation clamp of NVIDIA's networks (None in rosinality's).
    """

    def __init__(self, resolution: int, z_dim: int = 512, w_dim: int = 512, n_mlp: int = 8,
                 channels: dict[int, int] | None = None, lr_mlp: float = 0.01, conv_clamp: float | None = None,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        log = int(math.log2(resolution))
        if resolution < 4 or 2**log != resolution:
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        channels = {int(k): int(v) for k, v in (channels or default_channels(resolution)).items()}
        missing = [2**i for i in range(2, log + 1) if 2**i not in channels]
        if missing:
            raise ValueError(f"channels has no entry for resolutions {missing}")
        self.resolution, self.z_dim, self.w_dim, self.n_mlp = resolution, z_dim, w_dim, n_mlp
        self.channels = {2**i: channels[2**i] for i in range(2, log + 1)}
        self.lr_mlp, self.conv_clamp, self.blur_kernel = lr_mlp, conv_clamp, tuple(blur_kernel)
        self.num_ws = log * 2 - 2
        self.num_layers = (log - 2) * 2 + 1

        layers: list[nn.Module] = [PixelNorm()]
        for i in range(n_mlp):
            layers.append(EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mlp, activation=True))
        self.style = nn.Sequential(*layers)

        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, w_dim, blur_kernel=blur_kernel, conv_clamp=conv_clamp)
        self.to_rgb1 = ToRGB(c4, w_dim, upsample=False, conv_clamp=conv_clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, r, r))
        in_ch = c4
        for i in range(3, log + 1):
            out_ch = self.channels[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, w_dim, upsample=True, blur_kernel=blur_kernel,
                                         conv_clamp=conv_clamp))
            self.convs.append(StyledConv(out_ch, out_ch, 3, w_dim, blur_kernel=blur_kernel, conv_clamp=conv_clamp))
            self.to_rgbs.append(ToRGB(out_ch, w_dim, blur_kernel=blur_kernel, conv_clamp=conv_clamp))
            in_ch = out_ch
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @property
    def config(self) -> dict:
        """Everything needed to rebuild this generator (JSON-serialisable)."""
        return {"resolution": self.resolution, "z_dim": self.z_dim, "w_dim": self.w_dim, "n_mlp": self.n_mlp,
                "channels": {str(k): v for k, v in self.channels.items()}, "lr_mlp": self.lr_mlp,
                "conv_clamp": self.conv_clamp, "blur_kernel": list(self.blur_kernel)}

    @property
    def device(self) -> torch.device:
        return self.w_avg.device

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        """z [B, z_dim] -> w [B, w_dim], pulled towards `w_avg` by `truncation_psi` (1 = no truncation)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [B, {self.z_dim}], got {list(z.shape)}")
        w = self.style(z.to(self.w_avg.dtype))
        if truncation_psi != 1:
            w = self.w_avg + truncation_psi * (w - self.w_avg)
        return w

    def make_noise(self, mode: str = "const", batch: int = 1) -> list[torch.Tensor | None]:
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        bufs = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if mode == "none":
            return [None] * self.num_layers
        if mode == "random":
            return [torch.randn(batch, *b.shape[1:], device=b.device, dtype=b.dtype) for b in bufs]
        return bufs

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const", fused: bool = True) -> torch.Tensor:
        """ws [B, num_ws, w_dim] (or [B, 1, w_dim] / [B, w_dim], broadcast to every layer) -> [B, 3, H, W].

        `fused=False` runs the plain layer-by-layer formulas (style on the activations, separate bias, noise,
        activation and gain); the default folds them together and is faster. Both give the same images.
        """
        if ws.ndim == 2:
            ws = ws[:, None]
        if ws.ndim != 3 or ws.shape[2] != self.w_dim or ws.shape[1] not in (1, self.num_ws):
            raise ValueError(f"ws must have shape [B, {self.num_ws}, {self.w_dim}] (or [B, 1, {self.w_dim}]), "
                             f"got {list(ws.shape)}")
        dtype = self.input.input.dtype
        ws = ws.to(dtype).expand(-1, self.num_ws, -1)
        noise = self.make_noise(noise_mode, ws.shape[0])
        x = self.input(ws.shape[0])
        x = self.conv1(x, ws[:, 0], noise[0], fused)
        img = self.to_rgb1(x, ws[:, 1], fused=fused)
        i = 1
        for up, conv, to_rgb, n1, n2 in zip(self.convs[::2], self.convs[1::2], self.to_rgbs, noise[1::2], noise[2::2]):
            x = up(x, ws[:, i], n1, fused)
            x = conv(x, ws[:, i + 1], n2, fused)
            img = to_rgb(x, ws[:, i + 2], img, fused)
            i += 2
        return img

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "const") -> torch.Tensor:
        w = self.mapping(z, truncation_psi)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1), noise_mode)

    @torch.no_grad()
    def estimate_w_avg(self, n: int = 10000, seed: int = 0) -> torch.Tensor:
        """Mean of `mapping` over n random z, stored as `w_avg`. [w_dim]"""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=g).to(self.device)
        self.w_avg.copy_(torch.cat([self.style(c) for c in z.split(1000)]).mean(0))
        return self.w_avg
