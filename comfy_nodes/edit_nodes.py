"""Latent editing: load a direction, move the first code (or every code) along it."""

from __future__ import annotations

import dynode_core as dc
from dynode_core.editing import builtin_directions, layer_range

from . import _runtime
from ._schema import Bool, Choice, Float, Int, Output, Socket, node
from .sockets import CODES, DIRECTION, Direction

BUILTIN_PREFIX = "builtin: "
FIRST, EVERY = "first frame (propagate with the dynamics)", "every frame (same offset)"


def _direction_names() -> list[str]:
    return [BUILTIN_PREFIX + n for n in builtin_directions()] + _runtime.list_models(_runtime.DIRECTION_FOLDER)


@node("DynodeLoadDirection", "Load Direction (DynODE)", category="DynODE/edit",
      description="Load an edit direction: one shipped with the built-in generator, or a file from "
                  "ComfyUI/models/stylegan_directions/ (.safetensors, .npy, .pt: InterFaceGAN boundaries, GANSpace "
                  "components, DynODE directions).",
      inputs=[
          Choice("direction_name", _direction_names, "'builtin: ...' directions move a factor of the built-in "
                 "cartoon faces (smile, mouth, eyes, pose, ...); other entries are files in "
                 "ComfyUI/models/stylegan_directions/ for your own generator."),
          Int("component", -1, "For files holding several directions (GANSpace components [N, D]): which one. -1 "
              "reads the file as a single direction.", min=-1, max=4096),
          Bool("normalize", False, "Scale the direction to unit length, so strength is a distance in latent space."),
      ],
      outputs=[Output("direction", DIRECTION, "A direction [D] (every layer) or [L, D] (per layer).")])
class LoadDirection:
    def run(self, direction_name, component, normalize):
        if direction_name.startswith(BUILTIN_PREFIX):
            builtin = dc.editing.builtin_directions()
            name = direction_name[len(BUILTIN_PREFIX):]
            if name not in builtin:  # never a path: 'builtin: ../x' must not read a file
                raise ValueError(f"{direction_name!r} is not a built-in direction; they are {sorted(builtin)}")
            source = builtin[name]
        else:
            source = _runtime.model_path(_runtime.DIRECTION_FOLDER, direction_name)
        vector = dc.load_direction(source, index=None if component < 0 else component, normalize=normalize)
        return (Direction(vector, direction_name),)


@node("DynodeEditInitial", "Edit Initial Code (DynODE)", category="DynODE/edit",
      description="Move the first code of a clip along a direction. Connect the result to Sample Trajectory's z0 "
                  "so the fitted dynamics carry the edit through the whole clip (the paper's method). 'every "
                  "frame' instead adds the same offset to every code (no dynamics needed).",
      inputs=[
          Socket("codes", CODES, "Codes of the clip (e.g. from Invert)."),
          Socket("direction", DIRECTION, "The edit direction (Load Direction)."),
          Float("strength", 1.0, "How far to move along the direction; negative values move the other way.",
                min=-100.0, max=100.0, step=0.05),
          Choice("mode", [FIRST, EVERY], "first frame: edit z0 only, then propagate with Sample Trajectory; every "
                 "frame: the same offset on each code.", default=FIRST),
          Int("first_layer", 0, "First W+ layer to edit (0 = coarsest). Layers other than 0..last need W+ codes.",
              min=0, max=64),
          Int("last_layer", -1, "Last W+ layer to edit; -1 = the generator's last layer.", min=-1, max=64),
      ],
      outputs=[Output("codes", CODES, "The edited first code (first-frame mode) or every code edited.")])
class EditInitial:
    def run(self, codes, direction, strength, mode, first_layer, last_layer):
        layers = layer_range(first_layer, last_layer, codes.codes.shape[1])
        if mode == FIRST:
            return (dc.edit_initial(codes, direction.vector, strength, layers=layers),)
        if mode == EVERY:
            return (dc.edit_all(codes, direction.vector, strength, layers=layers),)
        raise ValueError(f"mode must be one of {[FIRST, EVERY]}, got {mode!r}")
