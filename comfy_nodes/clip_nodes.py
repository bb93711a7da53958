"""Built-in input for graphs that need no files: a ground-truth clip of a talking cartoon face."""

from __future__ import annotations

import torch

from dynode_core import builtin

from . import _images
from ._schema import Float, Int, Output, Seed, Socket, node
from .sockets import IMAGE, TIMES


@node("DynodeRenderClip", "Render Cartoon Clip (DynODE)", category="DynODE",
      description="Render a clip of a talking, blinking, turning cartoon face (the built-in generator's domain), "
                  "so a workflow runs with no input files. The motion is a continuous function of time: the same "
                  "seed at another frame rate shows the same motion, which makes it a ground truth for "
                  "interpolated frames.",
      inputs=[
          Int("frames", 8, "Number of frames (ignored when times are connected).", min=1, max=1000),
          Float("fps", 4.0, "Frames per second: frame k is at k / fps seconds (ignored when times are connected).",
                min=0.1, max=120.0, step=0.1),
          Seed("Which face (appearance and motion phases)."),
          Int("size", 64, "Frame width and height in pixels (the built-in generator draws 64).", min=16, max=1024,
              step=16),
          Socket("times", TIMES, "Render at these times instead, e.g. the times a trajectory was sampled at, to "
                 "compare it with the ground truth.", optional=True),
      ],
      outputs=[Output("images", IMAGE, "The frames, [T, size, size, 3] in 0..1."),
               Output("times", TIMES, "Their times in seconds.")])
class RenderClip:
    def run(self, frames, fps, seed, size, times=None):
        if times is None:
            times = torch.arange(frames, dtype=torch.float32) / fps
        clip = builtin.render_clip(times, seed=seed, size=size)
        return (_images.to_images(clip), times.detach().float().cpu())
