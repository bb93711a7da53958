"""DynODE: video as a continuous trajectory in a StyleGAN2's latent space.

The top level is the pipeline, in the order a clip goes through it:

    G = load_generator(...)                      # a StyleGAN2 (rosinality .pt, NVIDIA .pkl, .safetensors, "builtin")
    frames, fps = read_video(...)                # [T, 3, H, W] in [-1, 1]
    clip = invert(G, frames)                     # codes [T, L, D] (a Clip: codes, times, metadata)
    dyn = fit_dynamics(times, codes)             # or fit_dynamics(clip); kind="ode" | "cde" | "sde"
    codes = dyn.sample(sample_times(times, factor=4))          # [N, L, D]
    z0 = edit_initial(codes, load_direction("smile"), 1.0)     # edit the first code, re-run the dynamics
    write_video(path, decode(G, codes), fps=...)

Device rule: results come back on the device of the model that computed them (the generator for `invert`
and `decode`, the dynamics model for `dyn.sample`); inputs are moved to that device. `Clip.times` always
lives on the CPU.

The built-in cartoon domain (renderer, factor encoder, demo) is the subpackage `dynode_core.builtin`.
"""

from . import builtin
from .alignment import AlignedFaces, align_faces, paste_faces
from .checkpoints import convert_checkpoint, load_generator, save_generator
from .clip import Clip
from .codes import load_codes, save_codes
from .decoding import decode
from .dynamics import Dynamics, dynamics_options, fit_dynamics, load_dynamics
from .editing import edit_all, edit_initial, load_direction
from .encoders import load_encoder
from .errors import Cancelled, CheckpointError, GeneratorMismatch, VideoError
from .inversion import InversionOptions, invert
from .stylegan2 import Generator
from .times import sample_times
from .tuning import tune_generator
from .video import read_video, write_video

__version__ = "0.1.0"

# One line per name; helpers add theirs in the group it belongs to.
__all__ = [
    # generators
    "load_generator",
    "save_generator",
    "convert_checkpoint",
    "tune_generator",
    "Generator",
    # frames in and out
    "read_video",
    "write_video",
    # faces in real frames
    "align_faces",
    "paste_faces",
    "AlignedFaces",
    # clips of codes
    "Clip",
    "load_encoder",
    "invert",
    "InversionOptions",
    "load_codes",
    "save_codes",
    "decode",
    # dynamics
    "fit_dynamics",
    "load_dynamics",
    "dynamics_options",
    "sample_times",
    "Dynamics",
    # editing
    "load_direction",
    "edit_initial",
    "edit_all",
    # errors
    "Cancelled",
    "CheckpointError",
    "GeneratorMismatch",
    "VideoError",
    # the built-in cartoon domain (subpackage)
    "builtin",
]

# Names the top level exported before it was the pipeline only: they keep working, with a DeprecationWarning
# that says where they live now. name -> (module, attribute)
_MOVED = {
    "render_clip": ("dynode_core.builtin", "render_clip"),
    "render_faces": ("dynode_core.builtin", "render_faces"),
    "talking_clip": ("dynode_core.builtin", "talking_clip"),
    "face_regions": ("dynode_core.builtin", "face_regions"),
    "random_factors": ("dynode_core.builtin", "random_factors"),
    "FACTOR_NAMES": ("dynode_core.builtin", "FACTOR_NAMES"),
    "load_factor_encoder": ("dynode_core.builtin", "load_factor_encoder"),
    "psnr": ("dynode_core.metrics", "psnr"),
    "plot_trajectory": ("dynode_core.plotting", "plot_trajectory"),
    "BUILTIN_GENERATOR": ("dynode_core.checkpoints", "BUILTIN_GENERATOR"),
    "generator_fingerprint": ("dynode_core.codes", "generator_fingerprint"),
    "CodeFile": ("dynode_core.clip", "Clip"),
    "Inversion": ("dynode_core.inversion", "Inversion"),
    "builtin_directions": ("dynode_core.editing", "builtin_directions"),
    "flicker": ("dynode_core.editing", "flicker"),
    "temporal_consistency": ("dynode_core.editing", "temporal_consistency"),
    "keyframe_mask": ("dynode_core.times", "keyframe_mask"),
    "frames_from_uint8": ("dynode_core.video", "frames_from_uint8"),
    "frames_to_uint8": ("dynode_core.video", "frames_to_uint8"),
    "write_image": ("dynode_core.video", "write_image"),
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib
        import warnings

        module, attr = _MOVED[name]
        warnings.warn(f"dynode_core.{name} moved: use {module}.{attr} (the top level keeps the pipeline only)",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dynode_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
