"""Procedural cartoon faces: the built-in generator's image domain and the source of ground-truth clips.

A face is a vector of factors in fixed ranges (see `FACTOR_NAMES` / `FACTOR_RANGES`): motion factors (mouth
opening, smile, eye opening, head turn and tilt) and appearance factors (skin tone, hair colour, background
hue). `render_faces` draws them anti-aliased at any size; `talking_clip` gives a face talking, blinking and
turning as a smooth function of time in seconds, so any frame rate samples the same motion.

Coordinates: x right, y down, the image spans [-1, 1] on both axes. Images are [B, 3, H, W] in [-1, 1].
"""

from __future__ import annotations

import math

import torch

FACTOR_NAMES = ("mouth_open", "smile", "eye_open", "yaw", "roll", "skin", "hair", "background")
FACTOR_RANGES = {
    "mouth_open": (0.0, 1.0), "smile": (-0.5, 1.0), "eye_open": (0.0, 1.0), "yaw": (-1.0, 1.0),
    "roll": (-1.0, 1.0), "skin": (0.0, 1.0), "hair": (0.0, 1.0), "background": (0.0, 1.0),
}
MOTION_FACTORS = ("mouth_open", "smile", "eye_open", "yaw", "roll")

_SKIN = [(1.00, 0.87, 0.77), (0.96, 0.76, 0.62), (0.80, 0.58, 0.42), (0.58, 0.40, 0.27), (0.38, 0.25, 0.17)]
_HAIR = [(0.09, 0.08, 0.08), (0.36, 0.21, 0.11), (0.66, 0.27, 0.10), (0.88, 0.72, 0.38), (0.78, 0.78, 0.80)]


def _index(name: str) -> int:
    return FACTOR_NAMES.index(name)


def factor_bounds(device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper ends of every factor's range, in FACTOR_NAMES order. -> ([F], [F])"""
    lo = torch.tensor([FACTOR_RANGES[k][0] for k in FACTOR_NAMES], device=device)
    hi = torch.tensor([FACTOR_RANGES[k][1] for k in FACTOR_NAMES], device=device)
    return lo, hi


def random_factors(n: int, seed: int | None = None) -> torch.Tensor:
    """n faces with every factor uniform in its range. -> [n, F]"""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    u = torch.rand(n, len(FACTOR_NAMES), generator=g)
    lo, hi = factor_bounds()
    return lo + u * (hi - lo)


def _palette(t: torch.Tensor, colours: list[tuple[float, float, float]]) -> torch.Tensor:
    """Piecewise-linear colour ramp. t [B] in [0, 1] -> [B, 3]"""
    pal = torch.tensor(colours, dtype=t.dtype, device=t.device)
    x = t.clamp(0, 1) * (len(colours) - 1)
    i = x.floor().long().clamp(max=len(colours) - 2)
    f = (x - i)[:, None]
    return pal[i] * (1 - f) + pal[i + 1] * f


def _hsv(h: torch.Tensor, s: float, v: float) -> torch.Tensor:
    """Hue [B] in [0, 1] -> RGB [B, 3]"""
    k = (torch.tensor([5.0, 3.0, 1.0], device=h.device) + h[:, None] * 6) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _ellipse(x, y, cx, cy, rx, ry, px):
    """Coverage in [0, 1] of an ellipse, anti-aliased over one pixel `px` (approximate signed distance)."""
    d = torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + 1e-12)
    return torch.clamp(0.5 - (d - 1) * torch.minimum(rx, ry) / px, 0, 1)


def _layout(f: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-face geometry, each entry [B, 1, 1]."""
    p = {k: f[:, _index(k)].view(-1, 1, 1) for k in FACTOR_NAMES}
    yaw = p["yaw"]
    p["hx"] = yaw * 0.05  # head centre
    p["fx"] = yaw * 0.15  # features move further than the head outline: a turn
    p["wscale"] = 1 - 0.08 * yaw.abs()
    p["angle"] = p["roll"] * 0.3
    return p


def _head_coords(x: torch.Tensor, y: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the sampling grid about the neck so the head tilts."""
    c, s = torch.cos(angle), torch.sin(angle)
    yy = y - 0.55
    return c * x + s * yy, -s * x + c * yy + 0.55


def _grid(b: int, size: int, ss: int, device) -> tuple[torch.Tensor, torch.Tensor, float]:
    n = size * ss
    px = 2.0 / n
    v = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) * px - 1
    y, x = torch.meshgrid(v, v, indexing="ij")
    return x.expand(b, n, n), y.expand(b, n, n), px


def render_faces(factors: torch.Tensor, size: int = 64, supersample: int = 2) -> torch.Tensor:
    """Draw faces. factors [B, F] (see FACTOR_NAMES) -> images [B, 3, size, size] in [-1, 1]."""
    f = _check_factors(factors)
    b, dev = f.shape[0], f.device
    x, y, px = _grid(b, size, supersample, dev)
    p = _layout(f)
    hx, fx, ws = p["hx"], p["fx"], p["wscale"]
    skin = _palette(p["skin"].flatten(), _SKIN)
    hair = _palette(p["hair"].flatten(), _HAIR)
    bg = _hsv(p["background"].flatten(), 0.35, 0.92)
    shirt = bg * 0.35 + 0.15

    img = bg[:, :, None, None] * (0.9 + 0.1 * (1 - y[:, None]) / 2)

    def paint(alpha, colour):
        nonlocal img
        a = alpha[:, None]
        img = img * (1 - a) + colour[:, :, None, None] * a

    one = torch.ones_like(hx)
    paint(_ellipse(x, y, 0 * one, 1.25 * one, 0.78 * one, 0.45 * one, px), shirt)
    paint(_ellipse(x, y, 0 * one, 0.78 * one, 0.17 * one, 0.3 * one, px), skin * 0.85)

    x, y = _head_coords(x, y, p["angle"])
    paint(_ellipse(x, y, hx - 0.04 * p["yaw"], -0.08 * one, 0.63 * ws, 0.7 * one, px), hair)
    for side in (-1, 1):
        paint(_ellipse(x, y, hx + side * 0.47 * ws, 0.06 * one, 0.08 * one, 0.13 * one, px), skin * 0.9)
    paint(_ellipse(x, y, hx, 0.03 * one, 0.47 * ws, 0.57 * one, px), skin)
    paint(_ellipse(x, y, hx - 0.02 * p["yaw"], -0.44 * one, 0.5 * ws, 0.22 * one, px), hair)

    eye_open = p["eye_open"]
    for side in (-1, 1):
        ex = fx + side * 0.19
        grow = 1 - 0.25 * side * p["yaw"]  # the far eye looks smaller
        rx = 0.1 * grow * ws
        ry = 0.066 * eye_open + 0.004
        paint(_ellipse(x, y, ex, -0.19 - 0.03 * p["smile"], 0.11 * grow * one, 0.026 * one, px), hair * 0.7)
        paint(_ellipse(x, y, ex, -0.05 * one, rx + 0.018, ry + 0.018, px), torch.full_like(skin, 0.12))
        white = _ellipse(x, y, ex, -0.05 * one, rx, ry, px)
        paint(white, torch.full_like(skin, 0.97))
        pupil = _ellipse(x, y, ex + 0.035 * p["yaw"], -0.05 * one, 0.045 * grow * one, 0.045 * one, px)
        paint(pupil * white, torch.tensor([0.15, 0.3, 0.45], device=dev).expand(b, 3))

    paint(_ellipse(x, y, fx * 1.15, 0.12 * one, 0.045 * one, 0.075 * one, px), skin * 0.8)

    mouth_open, smile = p["mouth_open"], p["smile"]
    my = y + smile * 0.5 * (x - fx) ** 2  # a smile bends the mouth upwards at the corners
    mx = fx * 1.1
    mw = 0.16 + 0.03 * smile
    paint(_ellipse(x, my, mx, 0.33 * one, mw, 0.028 + 0.09 * mouth_open, px), torch.tensor([0.72, 0.25, 0.27], device=dev).expand(b, 3))
    inner_h = 0.004 + 0.075 * mouth_open
    inner = _ellipse(x, my, mx, 0.33 * one, mw - 0.025, inner_h, px)
    paint(inner, torch.tensor([0.25, 0.05, 0.07], device=dev).expand(b, 3))
    teeth = inner * torch.clamp(0.5 - (my - (0.33 - inner_h * 0.45)) / px, 0, 1)
    paint(teeth, torch.full_like(skin, 0.95))

    if supersample > 1:
        img = torch.nn.functional.avg_pool2d(img, supersample)
    return img.clamp(0, 1) * 2 - 1


def face_regions(factors: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Masks of the eyes-and-mouth region, the small features that matter most. -> [B, 1, size, size] in [0, 1]"""
    f = _check_factors(factors)
    x, y, px = _grid(f.shape[0], size, 1, f.device)
    p = _layout(f)
    x, y = _head_coords(x, y, p["angle"])
    one = torch.ones_like(p["fx"])
    m = _ellipse(x, y, p["fx"] * 1.1, 0.33 * one, 0.26 * one, 0.2 * one, px)
    for side in (-1, 1):
        m = torch.maximum(m, _ellipse(x, y, p["fx"] + side * 0.19, -0.1 * one, 0.17 * one, 0.16 * one, px))
    return m[:, None]


def talking_clip(times: torch.Tensor | list[float], seed: int = 0) -> torch.Tensor:
    """Factors of a face talking, blinking and turning, at `times` (seconds). -> [T, F]

    The appearance is fixed by `seed`; the motion is a smooth function of time, so clips sampled at different
    frame rates from the same seed show the same motion.
    """
    t = torch.as_tensor(times, dtype=torch.float32).flatten()
    g = torch.Generator().manual_seed(seed)
    look = random_factors(1, seed=seed)[0]
    ph = torch.rand(6, generator=g) * 2 * math.pi
    f = look.expand(len(t), -1).clone()
    tau = 2 * math.pi * t
    speech = torch.sin(tau * 1.1 + ph[0]) + 0.45 * torch.sin(tau * 2.1 + ph[1])
    f[:, _index("mouth_open")] = torch.sigmoid(2.2 * speech + 0.3)
    f[:, _index("smile")] = 0.25 + 0.45 * torch.sin(tau * 0.17 + ph[2])
    period, offset = 1.9, 0.4 + 0.5 * float(torch.rand(1, generator=g))
    phase = torch.remainder(t - offset, period) - period / 2  # blinks centred on offset + k * period
    f[:, _index("eye_open")] = 1 - 0.97 * torch.exp(-((phase / 0.09) ** 2))
    f[:, _index("yaw")] = 0.75 * torch.sin(tau * 0.31 + ph[3])
    f[:, _index("roll")] = 0.5 * torch.sin(tau * 0.23 + ph[4])
    return f


def render_clip(times: torch.Tensor | list[float], seed: int = 0, size: int = 64) -> torch.Tensor:
    """Ground-truth frames of `talking_clip(times, seed)`. -> [T, 3, size, size] in [-1, 1]"""
    return render_faces(talking_clip(times, seed), size=size)


def _check_factors(factors: torch.Tensor) -> torch.Tensor:
    f = torch.as_tensor(factors, dtype=torch.float32)
    if f.ndim != 2 or f.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must have shape [B, {len(FACTOR_NAMES)}] with columns {FACTOR_NAMES}, "
                         f"got {list(f.shape)}")
    return f
