"""The node declarations (`comfy_nodes._schema`): one declaration gives ComfyUI's classic attributes, the
registry and the reference docs; and the identity of the codes travels through the ComfyUI path."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root: comfy_nodes

import dynode_core as dc  # noqa: E402
import comfy_nodes  # noqa: E402
from comfy_nodes import _schema  # noqa: E402
from comfy_nodes._schema import Choice, Int, Output, Socket, node  # noqa: E402


def test_declaration_writes_the_classic_attributes():
    names = ["a", "b"]

    @node("DynodeTestOnly", "Test Only (DynODE)", category="DynODE/test", description="A node for this test.",
          inputs=[Socket("codes", "DYNODE_CODES", "Some codes."), Int("n", 3, "How many.", min=1, max=9),
                  Choice("pick", lambda: names, "Which one.", default="a"),
                  Socket("extra", "DYNODE_TIMES", "Optional times.", optional=True)],
          outputs=[Output("codes", "DYNODE_CODES", "The same codes.")])
    class TestOnly:
        def run(self, codes, n, pick, extra=None):
            return (codes,)

    try:
        spec = TestOnly.INPUT_TYPES()
        assert list(spec["required"]) == ["codes", "n", "pick"] and list(spec["optional"]) == ["extra"]
        assert spec["required"]["n"] == ("INT", {"default": 3, "min": 1, "max": 9, "tooltip": "How many."})
        names.append("c")  # choices are read each time ComfyUI asks (new files in a folder)
        assert TestOnly.INPUT_TYPES()["required"]["pick"][0] == ["a", "b", "c"]
        assert TestOnly.RETURN_TYPES == ("DYNODE_CODES",) and TestOnly.RETURN_NAMES == ("codes",)
        assert TestOnly.OUTPUT_TOOLTIPS == ("The same codes.",) and TestOnly.FUNCTION == "run"
        assert TestOnly.CATEGORY == "DynODE/test" and TestOnly.DESCRIPTION == "A node for this test."
        assert "`DynodeTestOnly`" in _schema.reference() and "| `n` | INT | 3 | How many. |" in _schema.reference()
    finally:
        _schema.REGISTRY.pop("DynodeTestOnly")
    with pytest.raises(ValueError, match="duplicate input names"):
        node("DynodeBad", "Bad", category="x", description="x", inputs=[Int("n", 1, "x"), Int("n", 1, "x")])
    with pytest.raises(TypeError, match="must define run"):
        node("DynodeBad", "Bad", category="x", description="x")(type("Bad", (), {}))


def test_every_node_is_declared_once_and_documented():
    assert comfy_nodes.NODE_CLASS_MAPPINGS == {k: c for k, (c, _) in _schema.REGISTRY.items()}
    for node_id, cls in comfy_nodes.NODE_CLASS_MAPPINGS.items():
        inputs, outputs = cls.SCHEMA
        assert cls.DESCRIPTION and all(i.tooltip for i in inputs) and all(o.tooltip for o in outputs), node_id
        assert len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS) == len(outputs)


def test_spec_nodes_show_the_options_their_kind_has():
    N = comfy_nodes.NODE_CLASS_MAPPINGS
    for node_id, kind in (("DynodeNeuralODE", "ode"), ("DynodeNeuralCDE", "cde"), ("DynodeNeuralSDE", "sde")):
        widgets = N[node_id].INPUT_TYPES()["required"]
        defaults = dc.dynamics_options(kind)
        assert set(widgets) <= set(defaults)
        assert all(w[1]["default"] == defaults[name] for name, w in widgets.items())
    assert "state" in N["DynodeNeuralCDE"].INPUT_TYPES()["required"]
    assert "state" not in N["DynodeNeuralODE"].INPUT_TYPES()["required"]


def test_identity_travels_through_the_nodes(tmp_path):
    N = comfy_nodes.NODE_CLASS_MAPPINGS
    torch.manual_seed(0)
    G = dc.Generator(16, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16}).eval()
    G.estimate_w_avg(500)
    fp = dc.codes.generator_fingerprint(G)
    images = (dc.decode(G, G.w_avg.expand(4, G.num_ws, -1).clone() + 0.1 * torch.randn(4, G.num_ws, 32)) + 1) / 2
    (codes,) = N["DynodeInvert"]().run(generator=G, images=images.permute(0, 2, 3, 1), space="w+", steps=4,
                                       smoothness=0.0, seed=0)
    assert isinstance(codes, dc.Clip) and codes.generator == fp and "psnr" in codes.metadata
    (spec,) = N["DynodeNeuralODE"]().run(iterations=3, rank=2, keyframes=True, pace=True, hidden=8,
                                         regularization=0.001)
    (dyn,) = N["DynodeFitDynamics"]().run(codes=codes, spec=spec, seed=0)
    assert dyn.metadata["generator"] == fp
    (times,) = N["DynodeSampleTimes"]().run(codes=codes, factor=2, extrapolate=0.0, extra_times="")
    (path,) = N["DynodeSampleTrajectory"]().run(dynamics=dyn, times=times, seed=0, mode="auto")
    assert path.generator == fp and len(path) == len(times)
    other = dc.Generator(16, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16}).eval()
    with pytest.raises(dc.GeneratorMismatch, match="another generator"):
        N["DynodeDecode"]().run(generator=other, codes=path, batch_size=4)
    (frames,) = N["DynodeDecode"]().run(generator=G, codes=path, batch_size=4)
    assert frames.shape == (len(times), 16, 16, 3)
