"""ComfyUI entry point of the DynODE node pack (this folder cloned into ComfyUI/custom_nodes/).

The library `dynode_core` lives beside this file; it is made importable here when it is not installed.
The nodes themselves are in `comfy_nodes/`.
"""

import os
import sys

try:
    import dynode_core  # noqa: F401  (installed, e.g. `pip install -e .`)
except ImportError:
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from .comfy_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
