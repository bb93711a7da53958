"""Save and load codes and fitted dynamics as .safetensors files (the same files the `dynode` CLI reads)."""

from __future__ import annotations

import os

import dynode_core as dc

from . import _runtime
from .sockets import CODES, DYNAMICS, GENERATOR, Codes

CODES_SUFFIX = ".codes.safetensors"
DYNAMICS_SUFFIX = ".dynamics.safetensors"


def _saved(path: str) -> dict:
    _, out = _runtime.user_dirs()
    rel = os.path.relpath(path, out).replace(os.sep, "/")
    return {"ui": {"text": [rel]}, "result": ()}


def _mtime(name: str) -> float:
    """Re-run a loader when its file was rewritten (ComfyUI compares this value with the last run's)."""
    try:
        return os.path.getmtime(_runtime.user_file_path(name))
    except FileNotFoundError:
        return float("nan")


class SaveCodes:
    DESCRIPTION = "Save codes and their times to ComfyUI/output/ as <prefix>_00001.codes.safetensors."
    CATEGORY = "DynODE/files"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "codes": (CODES, {"tooltip": "The codes to save."}),
                "filename_prefix": ("STRING", {"default": "dynode/codes", "tooltip": "File name start, relative "
                                               "to ComfyUI/output/ (a subfolder is allowed)."}),
            },
            "optional": {
                "generator": (GENERATOR, {"tooltip": "The generator the codes belong to: stamps the file so that "
                                                     "loading it with another generator is an error."}),
            },
        }

    def save(self, codes, filename_prefix, generator=None):
        path = _runtime.next_output_path(filename_prefix, CODES_SUFFIX)
        dc.save_codes(path, codes.codes, codes.times, G=generator)
        return _saved(path)


class LoadCodes:
    DESCRIPTION = "Load codes saved by Save Codes or by the dynode CLI (.safetensors with codes [T, L, D] and times)."
    CATEGORY = "DynODE/files"
    RETURN_TYPES = (CODES,)
    RETURN_NAMES = ("codes",)
    OUTPUT_TOOLTIPS = ("The codes and their times.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": (_runtime.list_user_files(".safetensors"), {"tooltip": "A .safetensors codes file from "
                         "ComfyUI/input/ or, marked [output], from ComfyUI/output/."}),
            },
            "optional": {
                "generator": (GENERATOR, {"tooltip": "Check that the codes were made with this generator "
                                                     "(same layers, same width, same weights)."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, file, generator=None):
        return _mtime(file)

    def load(self, file, generator=None):
        f = dc.load_codes(_runtime.user_file_path(file), G=generator)
        return (Codes(f.codes.to(_runtime.output_device()), f.times),)


class SaveDynamics:
    DESCRIPTION = "Save fitted dynamics to ComfyUI/output/ as <prefix>_00001.dynamics.safetensors."
    CATEGORY = "DynODE/files"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "dynamics": (DYNAMICS, {"tooltip": "Fitted dynamics from Fit Dynamics."}),
            "filename_prefix": ("STRING", {"default": "dynode/dynamics", "tooltip": "File name start, relative to "
                                           "ComfyUI/output/ (a subfolder is allowed)."}),
        }}

    def save(self, dynamics, filename_prefix):
        path = _runtime.next_output_path(filename_prefix, DYNAMICS_SUFFIX)
        dynamics.save(path)
        return _saved(path)


class LoadDynamics:
    DESCRIPTION = "Load dynamics saved by Save Dynamics or by the dynode CLI."
    CATEGORY = "DynODE/files"
    RETURN_TYPES = (DYNAMICS,)
    RETURN_NAMES = ("dynamics",)
    OUTPUT_TOOLTIPS = ("The fitted dynamics, ready for Sample Trajectory.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "file": (_runtime.list_user_files(".safetensors"), {"tooltip": "A .safetensors dynamics file from "
                     "ComfyUI/input/ or, marked [output], from ComfyUI/output/."}),
        }}

    @classmethod
    def IS_CHANGED(cls, file):
        return _mtime(file)

    def load(self, file):
        return (dc.load_dynamics(_runtime.user_file_path(file)),)
