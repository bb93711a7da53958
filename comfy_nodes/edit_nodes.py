"""Latent editing: load a direction, move the first code (or every code) along it."""

from __future__ import annotations

import dynode_core as dc

from . import _runtime
from .sockets import CODES, DIRECTION, Codes, Direction

BUILTIN_PREFIX = "builtin: "
FIRST, EVERY = "first frame (propagate with the dynamics)", "every frame (same offset)"


class LoadDirection:
    DESCRIPTION = ("Load an edit direction: one shipped with the built-in generator, or a file from "
                   "ComfyUI/models/stylegan_directions/ (.safetensors, .npy, .pt: InterFaceGAN boundaries, GANSpace "
                   "components, DynODE directions).")
    CATEGORY = "DynODE/edit"
    RETURN_TYPES = (DIRECTION,)
    RETURN_NAMES = ("direction",)
    OUTPUT_TOOLTIPS = ("A direction [D] (every layer) or [L, D] (per layer).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        names = [BUILTIN_PREFIX + n for n in dc.editing.builtin_directions()]
        names += _runtime.list_models(_runtime.DIRECTION_FOLDER)
        return {"required": {
            "direction_name": (names, {"tooltip": "'builtin: ...' directions move a factor of the built-in "
                                       "cartoon faces (smile, mouth, eyes, pose, ...); other entries are files in "
                                       "ComfyUI/models/stylegan_directions/ for your own generator."}),
            "component": ("INT", {"default": -1, "min": -1, "max": 4096, "tooltip": "For files holding several "
                              "directions (GANSpace components [N, D]): which one. -1 reads the file as a single "
                              "direction."}),
            "normalize": ("BOOLEAN", {"default": False, "tooltip": "Scale the direction to unit length, so "
                                       "strength is a distance in latent space."}),
        }}

    def load(self, direction_name, component, normalize):
        if direction_name.startswith(BUILTIN_PREFIX):
            source = direction_name[len(BUILTIN_PREFIX):]
        else:
            source = _runtime.model_path(_runtime.DIRECTION_FOLDER, direction_name)
        vector = dc.load_direction(source, index=None if component < 0 else component, normalize=normalize)
        return (Direction(vector, direction_name),)


class EditInitial:
    DESCRIPTION = ("Move the first code of a clip along a direction. Connect the result to Sample Trajectory's "
                   "z0 so the fitted dynamics carry the edit through the whole clip (the paper's method). "
                   "'every frame' instead adds the same offset to every code (no dynamics needed).")
    CATEGORY = "DynODE/edit"
    RETURN_TYPES = (CODES,)
    RETURN_NAMES = ("codes",)
    OUTPUT_TOOLTIPS = ("The edited first code (first-frame mode) or every code edited.",)
    FUNCTION = "edit"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "codes": (CODES, {"tooltip": "Codes of the clip (e.g. from Invert)."}),
            "direction": (DIRECTION, {"tooltip": "The edit direction (Load Direction)."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.05, "tooltip": "How far to "
                                   "move along the direction; negative values move the other way."}),
            "mode": ([FIRST, EVERY], {"default": FIRST, "tooltip": "first frame: edit z0 only, then propagate with "
                                      "Sample Trajectory; every frame: the same offset on each code."}),
            "first_layer": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "First W+ layer to edit (0 = "
                                    "coarsest). Layers other than 0..last need W+ codes."}),
            "last_layer": ("INT", {"default": -1, "min": -1, "max": 64, "tooltip": "Last W+ layer to edit; -1 = "
                                   "the generator's last layer."}),
        }}

    def edit(self, codes, direction, strength, mode, first_layer, last_layer):
        c = codes.codes
        n_layers = c.shape[1]
        stop = n_layers if last_layer < 0 else last_layer + 1
        if first_layer >= stop or stop > n_layers:
            raise ValueError(f"layers {first_layer}..{last_layer} do not fit codes with {n_layers} layers "
                             f"(valid: 0..{n_layers - 1}, -1 = last)")
        layers = None if (first_layer == 0 and stop == n_layers) else range(first_layer, stop)
        if mode == FIRST:
            out = dc.edit_initial(c, direction.vector, strength, layers=layers)
            return (Codes(out, codes.times[:1]),)
        if mode == EVERY:
            return (Codes(dc.edit_all(c, direction.vector, strength, layers=layers), codes.times),)
        raise ValueError(f"mode must be one of {[FIRST, EVERY]}, got {mode!r}")
