"""Nodes around the StyleGAN2 generator: load it and an image encoder, invert frames into its latent space, tune
it on a clip, decode codes to frames."""

from __future__ import annotations

import logging

import torch

import dynode_core as dc

from . import _images, _runtime
from ._schema import Choice, Float, Int, Output, Seed, Socket, node
from .sockets import CODES, ENCODER, GENERATOR, IMAGE, TIMES

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


def _encoder_names() -> list[str]:
    return [BUILTIN] + _runtime.list_models(_runtime.ENCODER_FOLDER)


@node("DynodeLoadEncoder", "Load Image Encoder (DynODE)", category="DynODE",
      description="Load an image encoder that gives Invert Frames its starting codes: the built-in encoder (for "
                  "the built-in generator) or an official pSp / e4e / ReStyle checkpoint from "
                  "ComfyUI/models/stylegan_encoders/ (read as tensors only; nothing in the file is run).",
      inputs=[Choice("encoder_name", _encoder_names, "'builtin' is the shipped encoder of the built-in generator; "
                     "other entries are the .pt checkpoints found in ComfyUI/models/stylegan_encoders/ (use the "
                     "generator stored in the same file: put it in models/stylegan/ too).", default=BUILTIN)],
      outputs=[Output("encoder", ENCODER, "The encoder, for Invert Frames' encoder input.")])
class LoadEncoder:
    def run(self, encoder_name: str):
        path = BUILTIN if encoder_name == BUILTIN else _runtime.model_path(_runtime.ENCODER_FOLDER, encoder_name)
        return (dc.load_encoder(path, device=_runtime.offload_device()),)


@node("DynodeInvert", "Invert Frames (DynODE)", category="DynODE",
      description="Find the latent codes that make the generator draw the given frames: an image encoder's codes "
                  "refined by a few optimisation steps (the built-in encoder for the built-in generator, or the "
                  "connected one), or optimisation alone. The result carries the frames' times and the "
                  "generator's identity.",
      inputs=[
          Socket("generator", GENERATOR, "The generator whose latent space the frames are projected into."),
          Socket("images", IMAGE, "The frames of one clip, in time order. Other sizes than the generator's are "
                 "resized and centre-cropped."),
          Choice("space", ["w+", "w"], "w+: one code per generator layer (more freedom, closer reconstructions); "
                 "w: one code per frame (stays where the generator was trained: smoother paths and edits).",
                 default="w+"),
          Int("steps", 300, "Optimisation only: steps of the first frames; every other frame starts from a solved "
              "neighbour and takes an eighth of them.", min=1, max=10000),
          Float("smoothness", 0.0, "Pull each code towards its neighbours' (0 = off). Smoother paths, slightly "
                "looser reconstructions.", min=0.0, max=100.0, step=0.01),
          Seed("Seed of the optimisation (the same seed gives the same codes)."),
          Choice("start", ["auto", "optimisation only"], "auto: start from an image encoder's codes (the "
                 "connected encoder, else the built-in encoder for the built-in generator) and refine them - fast "
                 "and keeps blinks and mouth motion; with no encoder for the generator, optimisation only. "
                 "optimisation only: projection from the average code (slower).", default="auto"),
          Socket("times", TIMES, "Time (seconds) of each frame. Unconnected: 0, 1, 2, ... (one frame per "
                 "second).", optional=True),
          Socket("encoder", ENCODER, "An image encoder from Load Image Encoder whose codes start the inversion. "
                 "Unconnected: 'auto' (see start).", optional=True),
      ],
      outputs=[Output("codes", CODES, "Codes [T, L, D] of the frames, with their times.")])
class Invert:
    @_runtime.grad_enabled
    def run(self, generator, images, space, steps, smoothness, seed, start="auto", times=None, encoder=None):
        frames = _images.to_frames(images)
        T = frames.shape[0]
        if times is None:
            times = torch.arange(T, dtype=torch.float32)
        elif times.numel() != T:
            raise ValueError(f"got {T} frames but {times.numel()} times; connect the times that belong to these "
                             f"frames (one per frame)")
        progress = _runtime.Progress(steps)
        with _runtime.on_compute_device(generator) as device:
            if encoder is not None:
                encoder = encoder.to(device)
            how = None if start == "optimisation only" else (encoder if encoder is not None else "auto")
            clip = dc.invert(generator, frames.to(device), encoder=how, times=times, space=space, steps=steps,
                             smoothness=smoothness, seed=seed, progress=progress, cancel=_runtime.cancel_hook)
            if encoder is not None:
                encoder.to(_runtime.offload_device())
        psnr = torch.tensor(clip.metadata["psnr"])
        log.info("DynODE Invert: %d frames into %s (%s), reconstruction PSNR %.1f dB (min %.1f dB)", T, space,
                 clip.metadata["inversion"], float(psnr.mean()), float(psnr.min()))
        return (clip.detach().to(_runtime.output_device()),)


@node("DynodeTuneGenerator", "Tune Generator (DynODE)", category="DynODE",
      description="Pivotal tuning: a copy of the generator fine-tuned so the clip's codes draw its frames exactly, "
                  "while other codes (in-between, extrapolated, edited) keep drawing what they drew. The input "
                  "generator is not changed.",
      inputs=[
          Socket("generator", GENERATOR, "The generator the codes belong to."),
          Socket("images", IMAGE, "The frames the codes were inverted from, in the same order."),
          Socket("codes", CODES, "Codes of those frames (from Invert Frames)."),
          Int("steps", 300, "Tuning steps; more fit the frames closer and take longer.", min=1, max=10000),
          Float("learning_rate", 2e-3, "Adam learning rate of the tuning.", min=1e-6, max=1e-2, step=1e-5),
          Float("locality", 0.1, "How strongly codes that are not the clip's must keep decoding as before (0 = "
                "off).", min=0.0, max=100.0, step=0.1),
          Seed("Seed of the tuning's batches and locality samples."),
      ],
      outputs=[Output("generator", GENERATOR, "The tuned copy."),
               Output("codes", CODES, "The same codes, stamped as the tuned generator's (decode them with it).")])
class TuneGenerator:
    @_runtime.grad_enabled
    def run(self, generator, images, codes, steps, learning_rate, locality, seed):
        frames = _images.to_frames(images)
        progress = _runtime.Progress(steps)
        with _runtime.on_compute_device(generator) as device:
            tuned = dc.tune_generator(generator, frames.to(device), codes.to(device), steps=steps, lr=learning_rate,
                                      locality=locality, seed=seed, progress=progress, cancel=_runtime.cancel_hook)
        return tuned.to(_runtime.offload_device()), codes.stamped(tuned)


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
