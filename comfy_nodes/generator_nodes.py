"""Nodes around the StyleGAN2 generator: load it, invert frames into its latent space, decode codes to frames."""

from __future__ import annotations

import logging

import torch

import dynode_core as dc

from . import _images, _runtime
from .sockets import CODES, GENERATOR, IMAGE, TIMES, Codes

BUILTIN = "builtin"
log = logging.getLogger(__name__)


class LoadGenerator:
    DESCRIPTION = ("Load a StyleGAN2 generator: the built-in 64x64 cartoon-face generator, or a checkpoint "
                   "from ComfyUI/models/stylegan/.")
    CATEGORY = "DynODE"
    RETURN_TYPES = (GENERATOR,)
    RETURN_NAMES = ("generator",)
    OUTPUT_TOOLTIPS = ("The generator, used by Invert and Decode.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        names = [BUILTIN] + _runtime.list_models(_runtime.GENERATOR_FOLDER)
        return {"required": {"generator_name": (names, {
            "default": BUILTIN,
            "tooltip": "'builtin' is the shipped cartoon-face generator (no download); other entries are the "
                       "checkpoints found in ComfyUI/models/stylegan/."})}}

    @_runtime.grad_enabled  # weights made under inference_mode could not be used by Invert's backward pass
    def load(self, generator_name: str):
        path = BUILTIN if generator_name == BUILTIN else _runtime.model_path(_runtime.GENERATOR_FOLDER, generator_name)
        G = dc.load_generator(path, device=_runtime.offload_device())
        return (G,)


class Invert:
    DESCRIPTION = ("Find the latent codes that make the generator draw the given frames (optimisation-based "
                   "projection of the whole clip at once). The result carries the frames' times.")
    CATEGORY = "DynODE"
    RETURN_TYPES = (CODES,)
    RETURN_NAMES = ("codes",)
    OUTPUT_TOOLTIPS = ("Codes [T, L, D] of the frames, with their times.",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "generator": (GENERATOR, {"tooltip": "The generator whose latent space the frames are projected into."}),
                "images": (IMAGE, {"tooltip": "The frames of one clip, in time order. Other sizes than the "
                                              "generator's are resized and centre-cropped."}),
                "space": (["w+", "w"], {"default": "w+", "tooltip": "w+: one code per generator layer (more "
                                        "freedom, usually closer reconstructions of real photos); w: one code per "
                                        "frame (stays where the generator was trained: smoother paths and edits; "
                                        "the better choice for the built-in generator)."}),
                "steps": ("INT", {"default": 300, "min": 1, "max": 10000, "tooltip": "Optimisation steps of the "
                                  "first frame; every other frame starts from a solved neighbour and takes a quarter "
                                  "of them. More steps reconstruct the frames more faithfully and take longer."}),
                "smoothness": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip": "Pull "
                                         "each code towards its neighbours' (0 = off). Smoother paths, slightly "
                                         "looser reconstructions."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Seed of the optimisation "
                                 "(the same seed gives the same codes)."}),
            },
            "optional": {
                "times": (TIMES, {"tooltip": "Time (seconds) of each frame. Unconnected: 0, 1, 2, ... "
                                             "(one frame per second)."}),
            },
        }

    @_runtime.grad_enabled
    def invert(self, generator, images, space, steps, smoothness, seed, times=None):
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
        psnr = result.psnr.flatten()
        log.info("DynODE Invert: %d frames into %s, reconstruction PSNR %.1f dB (min %.1f dB)", T, space,
                 float(psnr.mean()), float(psnr.min()))
        return (Codes(result.codes.detach().to(_runtime.output_device()), times.detach().float().cpu()),)


class Decode:
    DESCRIPTION = "Draw the frames of latent codes with the generator."
    CATEGORY = "DynODE"
    RETURN_TYPES = (IMAGE,)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("One frame per code, [N, H, W, 3] in 0..1.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": (GENERATOR, {"tooltip": "The generator the codes belong to."}),
            "codes": (CODES, {"tooltip": "The codes to draw, e.g. a sampled trajectory."}),
            "batch_size": ("INT", {"default": 16, "min": 1, "max": 1024, "tooltip": "Frames drawn at once; "
                                   "lower it if you run out of memory."}),
        }}

    def decode(self, generator, codes, batch_size):
        progress = _runtime.Progress(len(codes))
        with _runtime.on_compute_device(generator) as device:
            frames = dc.decode(generator, codes.codes.to(device), batch_size=batch_size, progress=progress,
                               cancel=_runtime.cancel_hook)
        return (_images.to_images(frames),)
