"""A picture of a latent trajectory: observed codes and sampled paths in the observed clip's first two
principal components (pure PIL, no plotting library)."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["plot_trajectory"]

_PATH_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]


def _flat(codes: torch.Tensor, what: str) -> torch.Tensor:
    codes = torch.as_tensor(codes).detach().float().cpu()
    if codes.ndim == 2:
        codes = codes[:, None]
    if codes.ndim != 3 or codes.shape[0] == 0:
        raise ValueError(f"{what} must be codes [T, L, D], got {list(codes.shape)}")
    return codes


def plot_trajectory(observed: torch.Tensor, paths: Sequence[torch.Tensor] = (), labels: Sequence[str] | None = None,
                    observed_times: torch.Tensor | None = None, size: tuple[int, int] = (640, 480),
                    title: str = "") -> Image.Image:
    """Draw observed codes [T, L, D] as numbered dots and each of `paths` ([N, L, D] each, e.g. a fitted
    trajectory, SDE samples, an edited rollout) as a line, projected on the first two principal components of
    the observed codes. W codes [T, 1, D] and W+ codes mix freely as long as every path has the observed
    codes' shape per frame (a [N, 1, D] path is broadcast to W+). Returns an RGB image of `size` (W, H).
    """
    obs = _flat(observed, "observed")
    T, L, D = obs.shape
    flat_paths = []
    for i, p in enumerate(paths):
        p = _flat(p, f"paths[{i}]")
        if p.shape[2] != D or p.shape[1] not in (1, L):
            raise ValueError(f"paths[{i}] has codes of shape {list(p.shape[1:])}, the observed codes have "
                             f"{[L, D]}: they belong to different generators")
        flat_paths.append(p.expand(-1, L, -1).reshape(p.shape[0], -1))
    labels = list(labels) if labels is not None else [f"path {i + 1}" for i in range(len(flat_paths))]
    if len(labels) != len(flat_paths):
        raise ValueError(f"got {len(labels)} labels for {len(flat_paths)} paths")

    x = obs.reshape(T, -1)
    mean = x.mean(0)
    if T >= 2:
        _, s, v = torch.linalg.svd(x - mean, full_matrices=False)
        basis = v[:2]
        var = s.square() / s.square().sum().clamp_min(1e-12)
    else:
        basis, var = torch.zeros(2, x.shape[1]), torch.zeros(2)
    if basis.shape[0] < 2:  # a single non-zero component
        basis = torch.cat([basis, torch.zeros(2 - basis.shape[0], x.shape[1])])
        var = torch.cat([var, torch.zeros(2 - var.shape[0])])

    def project(y: torch.Tensor) -> torch.Tensor:
        return (y - mean) @ basis.T  # [N, 2]

    pts_obs = project(x)
    pts_paths = [project(p) for p in flat_paths]
    allp = torch.cat([pts_obs, *pts_paths])
    lo, hi = allp.min(0).values, allp.max(0).values
    span = (hi - lo).clamp_min(1e-6)
    lo, hi = lo - 0.08 * span, hi + 0.08 * span

    W, H = size
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 56, W - 16, 28 if title else 14, H - 52

    def to_px(p: torch.Tensor) -> list[tuple[float, float]]:
        u = (p - lo) / (hi - lo)
        return [(left + float(a) * (right - left), bottom - float(b) * (bottom - top)) for a, b in u]

    draw.rectangle([left, top, right, bottom], outline=(160, 160, 160))
    draw.text((left + (right - left) // 2 - 40, bottom + 6), f"PC1 ({100 * float(var[0]):.0f}% var.)", fill="black", font=font)
    draw.text((4, top + (bottom - top) // 2), f"PC2\n({100 * float(var[1]):.0f}%)", fill="black", font=font)
    if title:
        draw.text((left, 8), title, fill="black", font=font)

    for k, (pts, name) in enumerate(zip(pts_paths, labels)):
        colour = _PATH_COLOURS[k % len(_PATH_COLOURS)]
        xy = to_px(pts)
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2, joint="curve")
        else:
            draw.ellipse([xy[0][0] - 3, xy[0][1] - 3, xy[0][0] + 3, xy[0][1] + 3], fill=colour)
        lx = left + 110 * (k + 1)
        draw.line([(lx, H - 12), (lx + 20, H - 12)], fill=colour, width=3)
        draw.text((lx + 25, H - 18), name, fill=colour, font=font)

    times = None if observed_times is None else torch.as_tensor(observed_times).flatten().tolist()
    for i, (px, py) in enumerate(to_px(pts_obs)):
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=(0, 0, 0))
        label = str(i) if times is None else f"{times[i]:.3g}"
        draw.text((px + 6, py - 12), label, fill=(60, 60, 60), font=font)
    draw.ellipse([left, H - 17, left + 10, H - 7], fill=(0, 0, 0))
    draw.text((left + 15, H - 18), "observed" + (" (time)" if times is not None else ""), fill="black", font=font)
    return img
