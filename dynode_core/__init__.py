"""DynODE: video as a continuous trajectory in a StyleGAN2's latent space."""

# Each block below is owned by one module; keep exports small.
# --- generator
from .stylegan2 import Generator
# --- end generator
# --- faces
from .builtin import load_factor_encoder
from .faces import FACTOR_NAMES, face_regions, random_factors, render_clip, render_faces, talking_clip
from .metrics import psnr
# --- end faces
# --- checkpoints
from .checkpoints import BUILTIN_GENERATOR, CheckpointError, convert_checkpoint, load_generator, save_generator
# --- end checkpoints
# --- plotting
from .plotting import plot_trajectory
# --- end plotting

# --- inversion, editing, video
from .codes import generator_fingerprint, load_codes, save_codes
from .decoding import Cancelled, decode
from .editing import builtin_directions, edit_all, edit_initial, flicker, load_direction, temporal_consistency
from .inversion import Inversion, invert
from .times import keyframe_mask, sample_times
from .video import frames_from_uint8, frames_to_uint8, read_video, write_image, write_video
# --- end inversion, editing, video

# --- dynamics
from .dynamics import Dynamics, dynamics_options, fit_dynamics, load_dynamics
# --- end dynamics

__version__ = "0.1.0"
