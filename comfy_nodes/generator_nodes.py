"""Nodes around the StyleGAN2 generator: load it, invert frames into its latent space, decode codes to frames."""

from __future__ import annotations

import logging

import torch

import dynode_core as dc

from . import _images, _runtime
from ._schema import Choice, Float, Int, Output, Seed, Socket, node
from .sockets import CODES, GENERATOR, IMAGE, TIMES

BUILTIN = "builtin"
log = logging.getLogger(__name__)


def _generator_names() -> list[str]:
    return [BUILTIN] + _runtime.list_models(_runtime.GENERATOR_FOLDER)


@node("DynodeLoadGenerator", "Load StyleGAN2 Generator (DynODE)", category="DynODE",
      description="Load a StyleGAN2 generator: the built-in 64x64 cartoon-face generator, or a checkpoint from "
                  "ComfyUI/models/stylegan/.",
      inputs=[Choice("generator_name", _generator_names, "'builtin' is the shipped cartoon-face generator (no "
                     "download); other entries are the checkpoints found in ComfyUI/models/stylegan/.",
                     default=BUILTIN)],
      outputs=[Output("generator", GENERATOR, "The generator, used by Invert and Decode.")])
class LoadGenerator:
    @_runtime.grad_enabled  # weights made under inference_mode could not be used by Invert's backward pass
    def run(self, generator_name: str):
        path = BUILTIN if generator_name == BUILTIN else _runtime.model_path(_runtime.GENERATOR_FOLDER, generator_name)
        return (dc.load_generator(path, device=_runtime.offload_device()),)


@node("DynodeInvert", "Invert Frames (DynODE)", category="DynODE",
      description="Find the latent codes that make the generator draw the given frames (optimisation-based "
                  "projection of the whole clip at once). The result carries the frames' times and the "
                  "generator's identity.",
      inputs=[
          Socket("generator", GENERATOR, "The generator whose latent space the frames are projected into."),
          Socket("images", IMAGE, "The frames of one clip, in time order. Other sizes than the generator's are "
                 "resized and centre-cropped."),
          Choice("space", ["w+", "w"], "w+: one code per generator layer (more freedom, usually closer "
                 "reconstructions of real photos); w: one code per frame (stays where the generator was trained: "
                 "smoother paths and edits; the better choice for the built-in generator).", default="w+"),
          Int("steps", 300, "Optimisation steps of the first frame; every other frame starts from a solved "
              "neighbour and takes a quarter of them. More steps reconstruct the frames more faithfully and take "
              "longer.", min=1, max=10000),
          Float("smoothness", 0.0, "Pull each code towards its neighbours' (0 = off). Smoother paths, slightly "
                "looser reconstructions.", min=0.0, max=100.0, step=0.01),
          Seed("Seed of the optimisation (the same seed gives the same codes)."),
          Socket("times", TIMES, "Time (seconds) of each frame. Unconnected: 0, 1, 2, ... (one frame per "
                 "second).", optional=True),
      ],
      outputs=[Output("codes", CODES, "Codes [T, L, D] of the frames, with their times.")])
class Invert:
    @_runtime.grad_enabled
    def run(self, generator, images, space, steps, smoothness, seed, times=None):
        frames = _images.to_frames(images)
        T = frames.shape[0]
        if times is None:
            times = torch.arange(T, dtype=torch.float32)
        elif times.numel() != T:
            raise ValueError(f"got {T} frames but {times.numel()} times; connect the times that belong to these "
                             f"frames (one per frame)")
        progress = _runtime.Progress(steps)
        with _runtime.on_compute_device(generator) as device:
            result = dc.invert(generator, frames.to(device), space=space, steps=steps, smoothness=smoothness,
                               seed=seed, progress=progress, cancel=_runtime.cancel_hook, return_psnr=True)
            clip = dc.Clip(result.codes.detach(), times, {"psnr": [round(float(p), 3) for p in result.psnr]})
            clip = clip.stamped(generator)
        psnr = result.psnr.flatten()
        log.info("DynODE Invert: %d frames into %s, reconstruction PSNR %.1f dB (min %.1f dB)", T, space,
                 float(psnr.mean()), float(psnr.min()))
        return (clip.to(_runtime.output_device()),)


@node("DynodeDecode", "Decode Codes (DynODE)", category="DynODE",
      description="Draw the frames of latent codes with the generator.",
      inputs=[
          Socket("generator", GENERATOR, "The generator the codes belong to (codes stamped by another generator "
                 "are refused)."),
          Socket("codes", CODES, "The codes to draw, e.g. a sampled trajectory."),
          Int("batch_size", 16, "Frames drawn at once; lower it if you run out of memory.", min=1, max=1024),
      ],
      outputs=[Output("images", IMAGE, "One frame per code, [N, H, W, 3] in 0..1.")])
class Decode:
    def run(self, generator, codes, batch_size):
        progress = _runtime.Progress(len(codes))
        with _runtime.on_compute_device(generator) as device:
            frames = dc.decode(generator, codes.to(device), batch_size=batch_size, progress=progress,
                               cancel=_runtime.cancel_hook)
        return (_images.to_images(frames),)
