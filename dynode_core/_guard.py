"""The command line's edge: argparse types that reject bad numbers, one error path, output-path checks.

Every `dynode` command gets these without doing anything (see docs/security.md, "For new commands"):
- `Parser.error` prints one line and exits 2 (argparse's default prints the whole usage);
- `check_outputs(args)` runs before the command: the output named by `--out` / `dst` (dests in
  `OUTPUT_DESTS`) must not be one of the command's inputs, must not exist unless `--overwrite` (added to
  every command that has an output), must end with one of the command's `out_suffixes` (a parser default),
  and its folder must be creatable and writable;
- `user_error(e)` turns every exception that is the user's input's fault into one line; anything else is a
  bug and keeps its traceback (exit 1);
- SIGTERM raises `Terminated` (a KeyboardInterrupt), so temp files are cleaned as on Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import signal
import struct
import zipfile
from pathlib import Path

from ._limits import limit

__all__ = ["Parser", "harden", "add_overwrite_flags", "finite_float", "nonneg_float", "positive_float", "positive_int", "nonneg_int", "fps",
           "frame_count", "check_outputs", "user_error", "Terminated", "install_signal_handlers", "OUTPUT_DESTS"]

OUTPUT_DESTS = ("out", "dst")


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (exit 2), for the parser and all its subcommands."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


# --- argparse types ---------------------------------------------------------------------------------------

def _number(text: str, kind=float):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if kind is int:
        if abs(v) > 2**62:
            raise argparse.ArgumentTypeError(f"{text!r} is far too large")
        if v != int(v):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        return int(v)
    return v


def finite_float(text: str) -> float:
    """Any finite number (no nan / inf)."""
    return _number(text)


def nonneg_float(text: str) -> float:
    v = _number(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = _number(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def positive_int(text: str) -> int:
    v = _number(text, int)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def bounded_int(name: str):
    """positive_int, at most limit(name) (raise it with DYNODE_MAX_<NAME>)."""
    def parse(text: str) -> int:
        v = positive_int(text)
        if v > limit(name):
            raise argparse.ArgumentTypeError(f"{v} exceeds the limit of {limit(name)}; raise it deliberately with "
                                             f"the environment variable DYNODE_MAX_{name}")
        return v
    parse.__name__ = f"int <= DYNODE_MAX_{name}"
    return parse


def fps(text: str) -> float:
    """A frame rate: > 0, finite, at most DYNODE_MAX_FPS."""
    v = positive_float(text)
    if v > limit("FPS"):
        raise argparse.ArgumentTypeError(f"{v:g} fps exceeds the limit of {limit('FPS')}; raise it deliberately "
                                         "with the environment variable DYNODE_MAX_FPS")
    return v


frame_count = bounded_int("FRAMES")
step_count = bounded_int("STEPS")
batch_size = bounded_int("BATCH")


# --- outputs ----------------------------------------------------------------------------------------------

class OutputError(ValueError):
    """An output path that would lose a file or cannot be written."""


def _inputs(args: argparse.Namespace) -> list[Path]:
    out = []
    for k, v in vars(args).items():
        if k in OUTPUT_DESTS or not isinstance(v, str) or not v or "\0" in v:
            continue
        try:
            p = Path(v).expanduser()
            if p.exists():
                out.append(p)
        except (OSError, ValueError):
            continue
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(path: str | os.PathLike, inputs=(), overwrite: bool = False, suffixes=None,
                 folder_ok: bool = False, folder_files: re.Pattern | None = None) -> Path:
    """Refuse an output path that is an input, exists (unless overwrite), has a wrong suffix, or cannot be
    created. A folder output (`folder_ok`) may exist if it is empty; with `folder_files` (e.g. the PNG frame
    names) an existing folder may only hold files matching it, even with overwrite."""
    p = Path(path).expanduser()
    if "\0" in str(path):
        raise OutputError("output path contains a NUL byte")
    for i in inputs:
        if _same(p, Path(i)):
            raise OutputError(f"refusing to write {p}: it is also this command's input (choose another output path)")
    is_folder = folder_ok and (p.suffix == "" or p.is_dir())
    if suffixes is not None and not is_folder and p.suffix.lower() not in suffixes:
        raise OutputError(f"output {p} must end with {' or '.join(suffixes)}"
                          + (" (or be a folder for PNG frames)" if folder_ok else ""))
    if p.is_dir():
        if not is_folder:
            raise OutputError(f"output {p} is a folder; give a file name")
        names = [c.name for c in p.iterdir()]
        others = [n for n in names if folder_files is not None and not folder_files.match(n)]
        if others:
            raise OutputError(f"output folder {p} holds files that are not DynODE frames ({', '.join(others[:3])}); "
                              "write the frames to a new or empty folder")
        if names and not overwrite:
            raise OutputError(f"output folder {p} is not empty (pass --overwrite to let this command replace its own files there)")
    elif p.exists() or p.is_symlink():
        if not overwrite:
            raise OutputError(f"output {p} already exists (pass --overwrite to replace it)")
        if not p.is_file():
            raise OutputError(f"output {p} is not a regular file")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {p}: folder {parent} is not writable")
    return p


def check_outputs(args: argparse.Namespace) -> None:
    """check_output for every output dest of a parsed command line (run before the command's work)."""
    inputs = _inputs(args)
    for dest in OUTPUT_DESTS:
        v = getattr(args, dest, None)
        if isinstance(v, str) and v:
            check_output(v, inputs, overwrite=bool(getattr(args, "overwrite", False)),
                         suffixes=getattr(args, "out_suffixes", None), folder_ok=bool(getattr(args, "out_folder_ok", False)),
                         folder_files=getattr(args, "out_folder_files", None))


def add_overwrite_flags(subparsers: argparse._SubParsersAction) -> None:
    """Give every command with an output (a dest in OUTPUT_DESTS) an --overwrite flag."""
    for sp in subparsers.choices.values():
        dests = {a.dest for a in sp._actions}
        if dests & set(OUTPUT_DESTS) and "overwrite" not in dests:
            sp.add_argument("--overwrite", action="store_true", help="replace the output if it exists")


# option dests whose plain int / float type is replaced by a checked one (see harden)
_BY_DEST = {"fps": fps, "max_frames": frame_count, "factor": frame_count, "every": frame_count,
            "frames": frame_count, "steps": step_count, "iterations": step_count, "batch_size": batch_size}


def harden(subparsers: argparse._SubParsersAction) -> None:
    """Replace every plain `type=int` / `type=float` of every command by a checked type: by option name for
    the known ones (fps, max_frames, factor, steps, batch_size, ...: positive and bounded), else integers >= 0
    and finite floats. So a command added later without thinking about it still rejects nan, inf and
    negative counts."""
    for sp in subparsers.choices.values():
        for a in sp._actions:
            if a.type is int:
                a.type = _BY_DEST.get(a.dest, nonneg_int)
            elif a.type is float:
                a.type = fps if a.dest == "fps" else finite_float


# --- one error path ---------------------------------------------------------------------------------------

class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that `finally` blocks remove temp files."""


def install_signal_handlers() -> None:
    def handler(signum, frame):
        raise Terminated(f"signal {signum}")
    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not the main thread
        pass


def one_line_warnings() -> None:
    """Format warnings as one line each ("dynode: warning: ..."), not two with a source line."""
    import warnings

    def fmt(message, category, filename, lineno, line=None):
        return f"dynode: warning: {' '.join(str(message).split())[:400]}\n"
    warnings.formatwarning = fmt


_FILE_ERRORS = (zipfile.BadZipFile, EOFError, struct.error, pickle.UnpicklingError, UnicodeError)


def user_error(e: BaseException) -> str | None:
    """The one-line message for an error that is the user's input's fault, or None for a bug."""
    if isinstance(e, OSError):
        text = e.strerror or str(e)
        if e.filename is not None:
            text = f"{text}: {e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
        elif str(e) and str(e) != text:
            text = str(e)
    elif isinstance(e, MemoryError):
        text = "not enough memory for this request (use smaller inputs or fewer frames)"
    elif isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e)):
        text = "not enough memory for this request (use smaller inputs, fewer frames or a smaller --batch-size)"
    elif isinstance(e, (ValueError, ImportError, OverflowError, FloatingPointError) + _FILE_ERRORS):
        text = str(e) or type(e).__name__
    elif type(e).__module__.split(".")[0] in ("safetensors", "av", "PIL"):  # their file-format errors
        text = f"{type(e).__name__}: {e}"
    else:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= 600 else text[:597] + "..."
