"""Save and load codes and fitted dynamics as .safetensors files (the same files the `dynode` CLI reads)."""

from __future__ import annotations

import os

import dynode_core as dc

from . import _runtime
from ._schema import Choice, Output, Socket, Text, node
from .sockets import CODES, DYNAMICS, GENERATOR

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


def _user_files() -> list[str]:
    return _runtime.list_user_files(".safetensors")


@node("DynodeSaveCodes", "Save Codes (DynODE)", category="DynODE/files", output_node=True,
      description="Save codes, their times and their generator stamp to ComfyUI/output/ as "
                  "<prefix>_00001.codes.safetensors.",
      inputs=[
          Socket("codes", CODES, "The codes to save."),
          Text("filename_prefix", "dynode/codes", "File name start, relative to ComfyUI/output/ (a subfolder is "
               "allowed)."),
          Socket("generator", GENERATOR, "The generator the codes belong to: stamps the file so that loading it "
                 "with another generator is an error (codes from Invert are stamped already).", optional=True),
      ])
class SaveCodes:
    def run(self, codes, filename_prefix, generator=None):
        path = _runtime.next_output_path(filename_prefix, CODES_SUFFIX)
        dc.save_codes(path, codes, G=generator)
        return _saved(path)


@node("DynodeLoadCodes", "Load Codes (DynODE)", category="DynODE/files",
      description="Load codes saved by Save Codes or by the dynode CLI (.safetensors with codes [T, L, D] and "
                  "times).",
      inputs=[
          Choice("file", _user_files, "A .safetensors codes file from ComfyUI/input/ or, marked [output], from "
                 "ComfyUI/output/."),
          Socket("generator", GENERATOR, "Check that the codes were made with this generator (same layers, same "
                 "width, same weights).", optional=True),
      ],
      outputs=[Output("codes", CODES, "The codes, their times and their generator stamp.")])
class LoadCodes:
    @classmethod
    def IS_CHANGED(cls, file, generator=None):
        return _mtime(file)

    def run(self, file, generator=None):
        return (dc.load_codes(_runtime.user_file_path(file), G=generator).to(_runtime.output_device()),)


@node("DynodeSaveDynamics", "Save Dynamics (DynODE)", category="DynODE/files", output_node=True,
      description="Save fitted dynamics to ComfyUI/output/ as <prefix>_00001.dynamics.safetensors.",
      inputs=[
          Socket("dynamics", DYNAMICS, "Fitted dynamics from Fit Dynamics."),
          Text("filename_prefix", "dynode/dynamics", "File name start, relative to ComfyUI/output/ (a subfolder "
               "is allowed)."),
      ])
class SaveDynamics:
    def run(self, dynamics, filename_prefix):
        path = _runtime.next_output_path(filename_prefix, DYNAMICS_SUFFIX)
        dynamics.save(path)
        return _saved(path)


@node("DynodeLoadDynamics", "Load Dynamics (DynODE)", category="DynODE/files",
      description="Load dynamics saved by Save Dynamics or by the dynode CLI.",
      inputs=[Choice("file", _user_files, "A .safetensors dynamics file from ComfyUI/input/ or, marked [output], "
                     "from ComfyUI/output/.")],
      outputs=[Output("dynamics", DYNAMICS, "The fitted dynamics, ready for Sample Trajectory.")])
class LoadDynamics:
    @classmethod
    def IS_CHANGED(cls, file):
        return _mtime(file)

    def run(self, file):
        return (dc.load_dynamics(_runtime.user_file_path(file)),)
