"""Face alignment nodes: Align Faces (frames -> aligned crops + the transforms) and Paste Faces (new crops back
into the frames). They work with ComfyUI's core video nodes (Get Video Components gives IMAGE + fps) and
with any IMAGE batch."""

from __future__ import annotations

import torch

import dynode_core as dc
from dynode_core.alignment import AlignedFaces
from dynode_core.video_pipeline import framing_for, source_background

from . import _images, _runtime
from ._schema import Choice, Float, Input, Int, Output, Socket, node
from .sockets import FACES, GENERATOR, IMAGE, TIMES, Faces


@node("DynodeAlignFaces", "Align Faces (DynODE)", category="DynODE",
      description="Find the face in every frame (MediaPipe face mesh) and cut out crops aligned the way the "
                  "generator was trained (FFHQ framing for face models, the built-in generator's own framing for "
                  "it), smoothed over time. Frames without a face get their neighbours' crop. Needs the 'faces' "
                  "extra in ComfyUI's Python: pip install mediapipe==0.10.21 matplotlib.",
      inputs=[
          Socket("images", IMAGE, "The video frames, in time order."),
          Choice("framing", ["auto", "ffhq", "builtin"], "auto: from the connected generator (builtin for the "
                 "built-in one, ffhq otherwise; ffhq without a generator).", default="auto"),
          Int("size", 256, "Crop side in pixels when no generator is connected (with one: its resolution).",
              min=16, max=4096, step=8),
          Float("smoothing", 3.0, "Width in frames of the temporal smoothing of the crop (0 = none).", min=0.0,
                max=30.0, step=0.5),
          Socket("generator", GENERATOR, "The generator the crops are for: sets size and framing.", optional=True),
          Input("fps", "FLOAT", "Frame rate (e.g. from Get Video Components); unconnected: 1 frame per second.",
                optional=True, options={"forceInput": True, "default": 0.0, "min": 0.0, "max": 1000.0}),
      ],
      outputs=[Output("crops", IMAGE, "Aligned crops [T, size, size, 3], for Invert."),
               Output("faces", FACES, "Where each crop came from (for Paste Faces)."),
               Output("times", TIMES, "Each frame's time in seconds (k / fps), for Invert.")])
class AlignFaces:
    def run(self, images, framing, size, smoothing, generator=None, fps=None):
        frames = _images.to_frames(images)
        if generator is not None:
            size = int(generator.resolution)
        if framing == "auto":
            framing = framing_for(generator) if generator is not None else "ffhq"
        rate = float(fps) if fps else 1.0
        if not rate > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        progress = _runtime.Progress(2 * len(frames))
        faces = dc.align_faces(frames, size=size, framing=framing, smoothing=smoothing, progress=progress,
                               cancel=_runtime.cancel_hook)
        times = torch.arange(len(frames), dtype=torch.float32) / rate
        return (_images.to_images(faces.crops), Faces(faces, times, rate), times)


@node("DynodePasteFaces", "Paste Faces (DynODE)", category="DynODE",
      description="Put new face crops (e.g. decoded from a sampled trajectory) back into the original frames with "
                  "a feathered mask; pixels away from the face stay exactly as they were. With more crops than "
                  "frames (a higher frame rate: connect their times), each crop goes over the nearest frame at the "
                  "transform interpolated to its time.",
      inputs=[
          Socket("images", IMAGE, "The original frames that Align Faces saw."),
          Socket("crops", IMAGE, "New face crops, any size (e.g. Decode's output)."),
          Socket("faces", FACES, "Align Faces' faces output."),
          Socket("times", TIMES, "Times of the crops when they are not one per original frame (e.g. Sample "
                 "Times' output).", optional=True),
      ],
      outputs=[Output("images", IMAGE, "The frames with the new faces, at the crops' times."),
               Output("fps", "FLOAT", "Their frame rate (for Create Video).")])
class PasteFaces:
    def run(self, images, crops, faces, times=None):
        if not isinstance(faces, Faces):
            raise ValueError("faces must come from an Align Faces node")
        frames, new = _images.to_frames(images), _images.to_frames(crops)
        track: AlignedFaces = faces.aligned
        if len(frames) != len(track):
            raise ValueError(f"got {len(frames)} frames but the faces were aligned on {len(track)}; connect the "
                             f"same images that went into Align Faces")
        if times is None:
            if len(new) != len(frames):
                raise ValueError(f"got {len(new)} crops for {len(frames)} frames: connect the crops' times (e.g. "
                                 f"from Sample Times) to paste them at another frame rate")
            grid = faces.times
        else:
            grid = torch.as_tensor(times, dtype=torch.float32).flatten().cpu()
            if len(grid) != len(new):
                raise ValueError(f"got {len(new)} crops but {len(grid)} times")
        moved = track.interpolate(faces.times, grid)
        back = source_background(faces.times, grid)
        progress = _runtime.Progress(len(new))
        out = dc.paste_faces(frames[back], new, moved, progress=progress, cancel=_runtime.cancel_hook)
        steps = torch.diff(grid.double())
        fps = float(1.0 / steps.median()) if len(steps) and float(steps.median()) > 0 else faces.fps
        return (_images.to_images(out), round(fps, 6))
