"""Built-in input for graphs that need no files: a ground-truth clip of a talking cartoon face."""

from __future__ import annotations

import torch

import dynode_core as dc

from . import _images
from .sockets import IMAGE, TIMES


class RenderClip:
    DESCRIPTION = ("Render a clip of a talking, blinking, turning cartoon face (the built-in generator's domain), "
                   "so a workflow runs with no input files. The motion is a continuous function of time: the same "
                   "seed at another frame rate shows the same motion, which makes it a ground truth for "
                   "interpolated frames.")
    CATEGORY = "DynODE"
    RETURN_TYPES = (IMAGE, TIMES)
    RETURN_NAMES = ("images", "times")
    OUTPUT_TOOLTIPS = ("The frames, [T, size, size, 3] in 0..1.", "Their times in seconds.")
    FUNCTION = "render"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("INT", {"default": 8, "min": 1, "max": 1000, "tooltip": "Number of frames (ignored "
                                   "when times are connected)."}),
                "fps": ("FLOAT", {"default": 4.0, "min": 0.1, "max": 120.0, "step": 0.1, "tooltip": "Frames per "
                                  "second: frame k is at k / fps seconds (ignored when times are connected)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Which face (appearance "
                                 "and motion phases)."}),
                "size": ("INT", {"default": 64, "min": 16, "max": 1024, "step": 16, "tooltip": "Frame width and "
                                 "height in pixels (the built-in generator draws 64)."}),
            },
            "optional": {
                "times": (TIMES, {"tooltip": "Render at these times instead, e.g. the times a trajectory was "
                                             "sampled at, to compare it with the ground truth."}),
            },
        }

    def render(self, frames, fps, seed, size, times=None):
        if times is None:
            times = torch.arange(frames, dtype=torch.float32) / fps
        clip = dc.builtin.render_clip(times, seed=seed, size=size)
        return (_images.to_images(clip), times.detach().float().cpu())
