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

__version__ = "0.1.0"
