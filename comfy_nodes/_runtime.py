"""What the nodes need from ComfyUI: devices, progress, interruption, model folders.

Every function falls back to a plain-PyTorch behaviour when ComfyUI is not importable, so the pack (and its
unit tests) also run outside ComfyUI: CPU device, no-op progress bar, no interruption.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Callable, Iterator

import torch

GENERATOR_FOLDER = "stylegan"  # ComfyUI/models/stylegan/
DIRECTION_FOLDER = "stylegan_directions"  # ComfyUI/models/stylegan_directions/
ENCODER_FOLDER = "stylegan_encoders"  # ComfyUI/models/stylegan_encoders/ (pSp / e4e / ReStyle .pt)
ENCODER_EXTENSIONS = {".pt", ".pth", ".ckpt"}
GENERATOR_EXTENSIONS = {".safetensors", ".pt", ".pth", ".pkl", ".ckpt"}
DIRECTION_EXTENSIONS = {".safetensors", ".pt", ".pth", ".npy"}


@functools.lru_cache(maxsize=None)
def _comfy():
    """(model_management, utils, folder_paths) of the running ComfyUI, or None outside ComfyUI."""
    try:
        import comfy.model_management as mm
        import comfy.utils as utils
        import folder_paths
    except ImportError:
        return None
    return mm, utils, folder_paths


def in_comfyui() -> bool:
    return _comfy() is not None


def compute_device() -> torch.device:
    """Where generators run and dynamics are fitted (ComfyUI's torch device; the CPU with --cpu)."""
    c = _comfy()
    return c[0].get_torch_device() if c else torch.device("cpu")


def offload_device() -> torch.device:
    """Where a generator waits between nodes (the CPU unless --highvram)."""
    c = _comfy()
    return c[0].unet_offload_device() if c else torch.device("cpu")


def output_device() -> torch.device:
    """Where node outputs live (ComfyUI's intermediate device: the CPU unless --gpu-only)."""
    c = _comfy()
    return c[0].intermediate_device() if c else torch.device("cpu")


def check_interrupted() -> None:
    """Raise ComfyUI's InterruptProcessingException if the user pressed Cancel."""
    c = _comfy()
    if c:
        c[0].throw_exception_if_processing_interrupted()


class Progress:
    """A progress callback `(done, total)` for the library that drives ComfyUI's progress bar and raises on
    Cancel. Outside ComfyUI it does nothing."""

    def __init__(self, total: int):
        c = _comfy()
        self.total = max(int(total), 1)
        self._bar = c[1].ProgressBar(self.total) if c else None

    def __call__(self, done: int, total: int | None = None, *_, **__) -> None:
        check_interrupted()
        if total is not None:
            self.total = max(int(total), 1)
        if self._bar is not None:
            self._bar.update_absolute(min(int(done), self.total), self.total)


def cancel_hook() -> bool:
    """The library's `cancel()` hook: raises ComfyUI's own interruption (so the UI shows "interrupted", not an
    error) and otherwise answers False."""
    check_interrupted()
    return False


def grad_enabled(fn: Callable) -> Callable:
    """Run a node function with autograd on. ComfyUI executes nodes under `torch.inference_mode()`; tensors
    made there (upstream outputs, weights loaded there) cannot be saved for backward, so tensor arguments that
    are inference tensors are cloned into normal ones first."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode(False), torch.enable_grad():
            args = tuple(_normal(a) for a in args)
            kwargs = {k: _normal(v) for k, v in kwargs.items()}
            return fn(*args, **kwargs)

    return wrapper


def _normal(x):
    if isinstance(x, torch.Tensor) and x.is_inference():
        return x.clone()
    return x


@contextlib.contextmanager
def on_compute_device(module: torch.nn.Module) -> Iterator[torch.device]:
    """Move a generator to the compute device for the duration of a node (freeing ComfyUI memory for it first)
    and back to the offload device afterwards, the way ComfyUI's own upscale-model node does."""
    device = compute_device()
    c = _comfy()
    if c and device.type != "cpu":
        size = sum(p.numel() * p.element_size() for p in module.parameters())
        c[0].free_memory(size * 2, device)
    module.to(device)
    try:
        yield device
    finally:
        module.to(offload_device())


# --- model folders -------------------------------------------------------------------------------------

def register_folders() -> None:
    """Register models/stylegan and models/stylegan_directions with ComfyUI's folder_paths (keeping any paths
    a user added in extra_model_paths.yaml)."""
    c = _comfy()
    if not c:
        return
    fp = c[2]
    for name, exts in ((GENERATOR_FOLDER, GENERATOR_EXTENSIONS), (DIRECTION_FOLDER, DIRECTION_EXTENSIONS),
                       (ENCODER_FOLDER, ENCODER_EXTENSIONS)):
        default = os.path.join(fp.models_dir, name)
        if name in fp.folder_names_and_paths:
            paths, old = fp.folder_names_and_paths[name]
            if default not in paths:
                paths.insert(0, default)
            fp.folder_names_and_paths[name] = (paths, set(old) | exts)
        else:
            fp.folder_names_and_paths[name] = ([default], set(exts))


EXAMPLE_INPUTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def install_example_inputs() -> list[str]:
    """Copy the pack's example input files (the video the face-video workflow loads) into ComfyUI's input
    folder when a file of that name is not there yet; never replaces a user's file. -> names copied."""
    c = _comfy()
    if not c or not os.path.isdir(EXAMPLE_INPUTS):
        return []
    import shutil

    target = c[2].get_input_directory()
    copied = []
    for name in sorted(os.listdir(EXAMPLE_INPUTS)):
        src, dst = os.path.join(EXAMPLE_INPUTS, name), os.path.join(target, name)
        if not os.path.isfile(src) or os.path.exists(dst):
            continue
        try:
            os.makedirs(target, exist_ok=True)
            tmp = dst + f".{os.getpid()}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
            copied.append(name)
        except OSError:  # a read-only input folder: the workflow then asks the user to pick a video
            pass
    return copied


def list_models(folder: str) -> list[str]:
    """File names in a registered model folder ([] outside ComfyUI)."""
    c = _comfy()
    if not c:
        return []
    register_folders()
    return list(c[2].get_filename_list(folder))


def _relative_name(name: str) -> str:
    """A file name as a workflow gives it, refused unless it is a plain relative path (no absolute path, no
    '..', no NUL): workflows come from other people, and the pack checks them itself."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError(f"invalid file name {name!r}")
    norm = name.replace("\\", "/")
    parts = norm.split("/")
    if os.path.isabs(name) or norm.startswith("/") or ".." in parts or (len(norm) > 1 and norm[1] == ":"):
        raise ValueError(f"file name {name!r} must be relative to its ComfyUI folder (no absolute path, no '..')")
    return os.path.join(*[p for p in parts if p not in ("", ".")])


def contained_path(root: str, name: str, follow_links: bool = False) -> str:
    """`root/name` after checking `name` stays inside `root`; with follow_links=False (user files) its real
    path must stay inside root's real path too, so a symlink cannot lead out of the folder."""
    rel = _relative_name(name)
    path = os.path.join(root, rel)
    if not follow_links:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if os.path.commonpath((real_root, real)) != real_root:
            raise ValueError(f"{name!r} leads outside the folder {root} (through a symlink); refused")
    return path


def model_path(folder: str, name: str) -> str:
    """Full path of a file from `list_models(folder)`, or a clear error naming the folders searched.

    The name must be a relative path inside one of the folder's registered paths and appear in the folder's
    list; a symlink placed in a model folder by the machine's owner (a common way to share models) is followed.
    """
    c = _comfy()
    if c:
        register_folders()
        rel = _relative_name(name)
        if name not in c[2].get_filename_list(folder) and rel.replace(os.sep, "/") not in c[2].get_filename_list(folder):
            raise FileNotFoundError(f"'{name}' is not in the {folder} model folder(s) {c[2].get_folder_paths(folder)}; "
                                    "put the file there and refresh the page (R)")
        for root in c[2].get_folder_paths(folder):
            path = contained_path(root, rel, follow_links=True)
            if os.path.isfile(path):
                return path
        where = c[2].get_folder_paths(folder)
    else:
        where = []
    if os.path.isfile(name):  # outside ComfyUI (tests, scripts) a plain path is accepted
        return name
    raise FileNotFoundError(f"'{name}' is not in the {folder} model folder(s) {where}; put the file there and "
                            f"refresh the page (R)")


def user_dirs() -> tuple[str, str]:
    """(input, output) directories of ComfyUI; the current directory outside it."""
    c = _comfy()
    if c:
        return c[2].get_input_directory(), c[2].get_output_directory()
    return os.getcwd(), os.getcwd()


def list_user_files(suffix: str) -> list[str]:
    """Files ending in `suffix` in ComfyUI's input folder, and in its output folder annotated ' [output]' (the
    annotation ComfyUI's own loaders use), sorted. Outside ComfyUI there is no such list: [] (paths are then
    given as they are)."""
    if not in_comfyui():
        return []
    inp, out = user_dirs()
    names = []
    for root, tag in ((inp, ""), (out, " [output]")):
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.endswith(suffix) and not f.startswith("."):
                    rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                    names.append(rel + tag)
    return names


def user_file_path(name: str) -> str:
    """Full path of an entry of `list_user_files` (or a plain path outside ComfyUI)."""
    inp, out = user_dirs()
    if not in_comfyui():
        if not os.path.isfile(name):
            raise FileNotFoundError(f"'{name}' not found")
        return name
    if name.endswith(" [output]"):
        path = contained_path(out, name[: -len(" [output]")])
    elif name.endswith(" [input]"):
        path = contained_path(inp, name[: -len(" [input]")])
    else:
        path = contained_path(inp, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"'{name}' not found (looked for {path}); pick a file from the list, or refresh "
                                f"the page (R) after adding one")
    return path


def next_output_path(prefix: str, suffix: str) -> str:
    """`<output>/<prefix>_00001<suffix>` with the first free counter; the prefix may name a subfolder but may not
    leave the output folder."""
    _, out = user_dirs()
    out = os.path.abspath(out)
    target = os.path.abspath(os.path.join(out, os.path.normpath(prefix)))
    if os.path.commonpath((out, target)) != out or target == out:
        raise ValueError(f"filename_prefix {prefix!r} points outside the output folder {out}")
    folder, name = os.path.split(target)
    os.makedirs(folder, exist_ok=True)
    counter = 1
    for f in os.listdir(folder):
        if f.startswith(name + "_") and f.endswith(suffix):
            middle = f[len(name) + 1: len(f) - len(suffix)]
            if middle.isdigit():
                counter = max(counter, int(middle) + 1)
    return os.path.join(folder, f"{name}_{counter:05d}{suffix}")
