"""Declare a node once: its inputs, outputs and texts in one `@node(...)` call that writes ComfyUI's classic
class attributes (INPUT_TYPES, RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS, FUNCTION, CATEGORY, DESCRIPTION,
OUTPUT_NODE) and registers the node under its id. The same declaration is the node's documentation
(`reference()` renders it as Markdown for docs/comfyui.md).

We write the classic attributes rather than ComfyUI's V3 schema (`comfy_api.latest.io`) because the classic
API is what every ComfyUI version since 2023 loads unchanged, it needs no ComfyUI import (the unit tests and
the library run without ComfyUI), and `latest` is by its name a moving target.

    @node("DynodeDecode", "Decode Codes (DynODE)", category="DynODE",
          description="Draw the frames of latent codes with the generator.",
          inputs=[Socket("generator", GENERATOR, "The generator the codes belong to."),
                  Int("batch_size", 16, "Frames drawn at once.", min=1, max=1024)],
          outputs=[Output("images", IMAGE, "One frame per code.")])
    class Decode:
        def run(self, generator, batch_size): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["node", "Socket", "Int", "Float", "Bool", "Text", "Choice", "Seed", "Output", "REGISTRY", "reference"]

SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class Input:
    """One input: `kind` is the ComfyUI type ("INT", "FLOAT", a socket type, ...) or, for a combo box, a list of
    choices (or a function returning it, evaluated each time ComfyUI asks for the node's inputs)."""
    name: str
    kind: str | Sequence[str] | Callable[[], Sequence[str]]
    tooltip: str
    optional: bool = False
    options: dict = field(default_factory=dict)

    def spec(self) -> tuple:
        kind = self.kind() if callable(self.kind) else self.kind
        kind = list(kind) if not isinstance(kind, str) else kind
        return (kind, {**self.options, "tooltip": self.tooltip})

    @property
    def type_name(self) -> str:
        return self.kind if isinstance(self.kind, str) else "choice"


def Socket(name: str, kind: str, tooltip: str, optional: bool = False) -> Input:
    """A connection from another node (GENERATOR, CODES, IMAGE, ...)."""
    return Input(name, kind, tooltip, optional)


def Int(name: str, default: int, tooltip: str, min: int = 0, max: int = SEED_MAX, step: int | None = None,
        optional: bool = False) -> Input:
    opts = {"default": default, "min": min, "max": max, **({"step": step} if step is not None else {})}
    return Input(name, "INT", tooltip, optional, opts)


def Float(name: str, default: float, tooltip: str, min: float, max: float, step: float,
          optional: bool = False) -> Input:
    return Input(name, "FLOAT", tooltip, optional, {"default": default, "min": min, "max": max, "step": step})


def Bool(name: str, default: bool, tooltip: str, optional: bool = False) -> Input:
    return Input(name, "BOOLEAN", tooltip, optional, {"default": default})


def Text(name: str, default: str, tooltip: str, optional: bool = False) -> Input:
    return Input(name, "STRING", tooltip, optional, {"default": default})


def Choice(name: str, choices: Sequence[str] | Callable[[], Sequence[str]], tooltip: str,
           default: str | None = None, optional: bool = False) -> Input:
    return Input(name, choices, tooltip, optional, {"default": default} if default is not None else {})


def Seed(tooltip: str, name: str = "seed") -> Input:
    return Int(name, 0, tooltip, min=0, max=SEED_MAX)


@dataclass(frozen=True)
class Output:
    name: str
    kind: str
    tooltip: str


# node id -> (class, display name), in declaration order
REGISTRY: dict[str, tuple[type, str]] = {}


def node(node_id: str, display_name: str, *, category: str, description: str, inputs: Sequence[Input] = (),
         outputs: Sequence[Output] = (), output_node: bool = False, function: str = "run"):
    """Class decorator: give the class ComfyUI's classic node attributes from this one declaration and
    register it as `node_id`. The class defines `function` (default `run`) taking the inputs by name."""
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise ValueError(f"{node_id}: duplicate input names {names}")

    def decorate(cls: type) -> type:
        if not callable(getattr(cls, function, None)):
            raise TypeError(f"{node_id}: {cls.__name__} must define {function}()")
        if node_id in REGISTRY and REGISTRY[node_id][0].__qualname__ != cls.__qualname__:
            raise ValueError(f"node id {node_id!r} is declared twice")
        frozen_inputs = tuple(inputs)

        def INPUT_TYPES(_cls) -> dict[str, dict[str, tuple]]:
            out: dict[str, dict[str, tuple]] = {"required": {}}
            for i in frozen_inputs:
                out.setdefault("optional" if i.optional else "required", {})[i.name] = i.spec()
            return out

        cls.INPUT_TYPES = classmethod(INPUT_TYPES)
        cls.RETURN_TYPES = tuple(o.kind for o in outputs)
        cls.RETURN_NAMES = tuple(o.name for o in outputs)
        cls.OUTPUT_TOOLTIPS = tuple(o.tooltip for o in outputs)
        cls.FUNCTION = function
        cls.CATEGORY = category
        cls.DESCRIPTION = description
        cls.OUTPUT_NODE = output_node
        cls.NODE_ID = node_id
        cls.DISPLAY_NAME = display_name
        cls.SCHEMA = (frozen_inputs, tuple(outputs))
        REGISTRY[node_id] = (cls, display_name)
        return cls

    return decorate


def reference() -> str:
    """Every registered node as Markdown: description, inputs (type, default, tooltip), outputs."""
    lines = []
    for node_id, (cls, display) in REGISTRY.items():
        inputs, outputs = cls.SCHEMA
        lines += [f"### {display}", "", f"`{node_id}` — *{cls.CATEGORY}*. {cls.DESCRIPTION}", ""]
        if inputs:
            lines += ["| input | type | default | |", "| --- | --- | --- | --- |"]
            for i in inputs:
                default = i.options.get("default", "")
                kind = i.type_name + (" (optional)" if i.optional else "")
                lines.append(f"| `{i.name}` | {kind} | {_cell(default)} | {_cell(i.tooltip)} |")
            lines.append("")
        if outputs:
            lines += ["| output | type | |", "| --- | --- | --- |"]
            lines += [f"| `{o.name}` | {o.kind} | {_cell(o.tooltip)} |" for o in outputs]
            lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
