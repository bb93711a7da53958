"""DynODE's ComfyUI node pack: thin nodes over `dynode_core` (classic NODE_CLASS_MAPPINGS API).

Each node is declared once with `_schema.node(...)` (inputs, outputs, texts), which registers it; importing a
node module is what adds its nodes to the pack. How to add one: docs/comfyui.md.

ComfyUI loads the pack through the repository's root `__init__.py`; outside ComfyUI it imports as a plain
package (the unit tests call the node classes directly).
"""

from . import _runtime
from . import clip_nodes, dynamics_nodes, edit_nodes, face_nodes, file_nodes, generator_nodes  # noqa: F401  (register nodes)
from ._schema import REGISTRY

_runtime.register_folders()
_runtime.install_example_inputs()

NODE_CLASS_MAPPINGS = {node_id: cls for node_id, (cls, _) in REGISTRY.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, (_, name) in REGISTRY.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
