"""DynODE's ComfyUI node pack: thin nodes over `dynode_core` (classic NODE_CLASS_MAPPINGS API).

ComfyUI loads it through the repository's root `__init__.py`; outside ComfyUI it imports as a plain package
(the unit tests call the node classes directly).
"""

from . import _runtime
from .clip_nodes import RenderClip
from .dynamics_nodes import (FitDynamics, NeuralCDE, NeuralODE, NeuralSDE, PlotTrajectory, SampleTimes,
                             SampleTrajectory)
from .edit_nodes import EditInitial, LoadDirection
from .file_nodes import LoadCodes, LoadDynamics, SaveCodes, SaveDynamics
from .generator_nodes import Decode, Invert, LoadGenerator

_runtime.register_folders()

# node id -> (class, display name)
_NODES = {
    "DynodeLoadGenerator": (LoadGenerator, "Load StyleGAN2 Generator (DynODE)"),
    "DynodeRenderClip": (RenderClip, "Render Cartoon Clip (DynODE)"),
    "DynodeInvert": (Invert, "Invert Frames (DynODE)"),
    "DynodeNeuralODE": (NeuralODE, "Neural ODE (DynODE)"),
    "DynodeNeuralCDE": (NeuralCDE, "Neural CDE (DynODE)"),
    "DynodeNeuralSDE": (NeuralSDE, "Neural SDE (DynODE)"),
    "DynodeFitDynamics": (FitDynamics, "Fit Dynamics (DynODE)"),
    "DynodeSampleTimes": (SampleTimes, "Sample Times (DynODE)"),
    "DynodeSampleTrajectory": (SampleTrajectory, "Sample Trajectory (DynODE)"),
    "DynodeLoadDirection": (LoadDirection, "Load Direction (DynODE)"),
    "DynodeEditInitial": (EditInitial, "Edit Initial Code (DynODE)"),
    "DynodeDecode": (Decode, "Decode Codes (DynODE)"),
    "DynodePlotTrajectory": (PlotTrajectory, "Plot Trajectory (DynODE)"),
    "DynodeSaveCodes": (SaveCodes, "Save Codes (DynODE)"),
    "DynodeLoadCodes": (LoadCodes, "Load Codes (DynODE)"),
    "DynodeSaveDynamics": (SaveDynamics, "Save Dynamics (DynODE)"),
    "DynodeLoadDynamics": (LoadDynamics, "Load Dynamics (DynODE)"),
}

NODE_CLASS_MAPPINGS = {k: cls for k, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: name for k, (_, name) in _NODES.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
