"""The built-in cartoon domain: what makes DynODE runnable and measurable with no downloads.

- `renderer`: procedural cartoon faces (`render_faces`, `render_clip`, `talking_clip`): the built-in
  generator's image domain, and ground-truth clips at any frame rate;
- `factor_encoder`: the encoder that maps the renderer's factors to the built-in generator's W space (the
  edit directions and the quality tests are made with it);
- `scene`: the talking face moving in a larger frame over a textured background (`scene_clip`), the
  ground truth of alignment and paste-back;
- `demo`: `run_demo`, the whole pipeline on this domain (`dynode demo`).

The built-in generator itself is `dynode_core.load_generator("builtin")`; its edit directions load with
`dynode_core.load_direction("smile")` etc.

    from dynode_core import builtin
    frames = builtin.render_clip(torch.arange(9) / 4.0)    # [9, 3, 64, 64] in [-1, 1]
"""

from .factor_encoder import DIRECTIONS, FACTOR_ENCODER, FactorEncoder, factors_from_z, load_factor_encoder
from .renderer import (FACTOR_NAMES, FACTOR_RANGES, MOTION_FACTORS, face_regions, factor_bounds, random_factors,
                       render_clip, render_faces, talking_clip)
from .scene import scene_clip, scene_transforms

__all__ = ["render_clip", "render_faces", "talking_clip", "face_regions", "random_factors", "factor_bounds",
           "FACTOR_NAMES", "FACTOR_RANGES", "MOTION_FACTORS", "load_factor_encoder", "FactorEncoder",
           "factors_from_z", "scene_clip", "scene_transforms", "run_demo"]


def __getattr__(name: str):
    if name == "run_demo":  # the demo imports the whole pipeline: load it only when asked for
        from .demo import run_demo

        return run_demo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
