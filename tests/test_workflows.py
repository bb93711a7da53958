"""The example workflows (workflows/*.json, ComfyUI's UI format).

In CI (no ComfyUI): every node type exists in the pack or is a known core node, every link joins matching
types, every widget value is valid for its input, and the graph runs through the node classes in dependency
order (core nodes by small stand-ins; tiny step counts).

Against a real ComfyUI (opt-in, see docs/comfyui.md): set DYNODE_COMFYUI_URL to a running server that has the
pack in custom_nodes/ (e.g. http://127.0.0.1:8188), or DYNODE_COMFYUI_PATH to a ComfyUI checkout with the pack
installed (the test starts it with --cpu on a free port, using DYNODE_COMFYUI_PYTHON or this Python). Each
workflow is converted to an API prompt from the server's /object_info, queued with real settings, and must
finish without error and with images. With DYNODE_COMFYUI_BROWSER=/path/to/chromium and Playwright
installed, each workflow is instead loaded and queued through ComfyUI's own frontend.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # comfy_nodes

import dynode_core as dc  # noqa: E402
import comfy_nodes  # noqa: E402

WORKFLOWS = sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json")))
WF_IDS = [os.path.basename(p)[:-5] for p in WORKFLOWS]
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # virtual nodes: never sent to the server

# Core ComfyUI nodes the workflows use, as ComfyUI 0.3.64 declares them (checked against a real server by
# test_core_node_list_matches_comfyui when one is given).
CORE_NODES = {
    "PreviewImage": {"required": {"images": ("IMAGE", {})}, "output": []},
    "SaveImage": {"required": {"images": ("IMAGE", {}), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                  "output": []},
    "SaveAnimatedWEBP": {"required": {
        "images": ("IMAGE", {}), "filename_prefix": ("STRING", {"default": "ComfyUI"}),
        "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0}), "lossless": ("BOOLEAN", {"default": True}),
        "quality": ("INT", {"default": 80, "min": 0, "max": 100}), "method": (["default", "fastest", "slowest"], {})},
        "output": []},
    "ImageStitch": {"required": {
        "image1": ("IMAGE", {}), "direction": (["right", "down", "left", "up"], {"default": "right"}),
        "match_image_size": ("BOOLEAN", {"default": True}),
        "spacing_width": ("INT", {"default": 0, "min": 0, "max": 1024}),
        "spacing_color": (["white", "black", "red", "green", "blue"], {"default": "white"})},
        "optional": {"image2": ("IMAGE", {})}, "output": ["IMAGE"]},
    "ImageScaleBy": {"required": {
        "image": ("IMAGE", {}), "upscale_method": (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"], {}),
        "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0})}, "output": ["IMAGE"]},
    # the core video nodes (comfy_extras/nodes_video.py, V3 schema: combos travel as COMBO)
    "LoadVideo": {"required": {"file": ("COMBO", {"video_upload": True})}, "output": ["VIDEO"]},
    "GetVideoComponents": {"required": {"video": ("VIDEO", {})}, "output": ["IMAGE", "AUDIO", "FLOAT"]},
    "CreateVideo": {"required": {"images": ("IMAGE", {}), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0})},
                    "optional": {"audio": ("AUDIO", {})}, "output": ["VIDEO"]},
    "SaveVideo": {"required": {"video": ("VIDEO", {}), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                               "format": ("COMBO", {}), "codec": ("COMBO", {})}, "output": []},
}
EXAMPLE_INPUTS = os.path.join(ROOT, "comfy_nodes", "assets")  # what the pack copies into ComfyUI's input folder


# --- graph helpers (shared by the CI checks and the real-ComfyUI run) ------------------------------------------------

def pack_specs() -> dict:
    """{node type: {"required": {name: (type, opts)}, "optional": {...}, "output": [types]}} for pack and core."""
    specs = {k: dict(v) for k, v in CORE_NODES.items()}
    for node_id, cls in comfy_nodes.NODE_CLASS_MAPPINGS.items():
        inp = cls.INPUT_TYPES()
        specs[node_id] = {"required": inp.get("required", {}), "optional": inp.get("optional", {}),
                          "output": list(cls.RETURN_TYPES)}
    return specs


def server_specs(object_info: dict) -> dict:
    """The same structure from a server's /object_info."""
    specs = {}
    for name, info in object_info.items():
        inp = info["input"]
        order = info.get("input_order", {})
        spec = {"output": list(info["output"])}
        for section in ("required", "optional"):
            entries = inp.get(section, {})
            names = order.get(section, list(entries))
            spec[section] = {n: (entries[n][0], entries[n][1] if len(entries[n]) > 1 else {}) for n in names}
        specs[name] = spec
    return specs


def is_widget(entry) -> bool:
    kind, opts = entry[0], entry[1] if len(entry) > 1 else {}
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def widget_inputs(spec) -> list[tuple[str, tuple]]:
    return [(n, e) for section in ("required", "optional") for n, e in spec.get(section, {}).items() if is_widget(e)]


def has_control(name, entry) -> bool:
    """The frontend adds a 'control after generate' value after seed-like INT widgets."""
    opts = entry[1] if len(entry) > 1 else {}
    return entry[0] == "INT" and (name in ("seed", "noise_seed") or bool(opts.get("control_after_generate")))


def widget_values(node, spec) -> dict:
    values = list(node.get("widgets_values") or [])
    out = {}
    for name, entry in widget_inputs(spec):
        if not values:
            raise AssertionError(f"node {node['id']} ({node['type']}): no value for widget {name!r}")
        out[name] = values.pop(0)
        if has_control(name, entry) and values and values[0] in CONTROL_VALUES:
            values.pop(0)
    if values:
        raise AssertionError(f"node {node['id']} ({node['type']}): {len(values)} unused widget values {values}")
    return out


def executed_nodes(wf) -> list[dict]:
    return [n for n in wf["nodes"] if n["type"] not in FRONTEND_ONLY]


def ui_to_api(wf, specs) -> dict:
    """What the frontend's graphToPrompt sends: {id: {class_type, inputs: {name: value | [src_id, slot]}}}."""
    links = {l[0]: l for l in wf["links"]}
    prompt = {}
    for node in executed_nodes(wf):
        assert node.get("mode", 0) == 0, f"node {node['id']} ({node['type']}) is muted or bypassed"
        spec = specs[node["type"]]
        inputs = dict(widget_values(node, spec))
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                link = links[inp["link"]]
                inputs[inp["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt


def output_node_ids(prompt) -> list[str]:
    return [k for k, v in prompt.items()
            if v["class_type"] in CORE_NODES and not CORE_NODES[v["class_type"]]["output"]
            or getattr(comfy_nodes.NODE_CLASS_MAPPINGS.get(v["class_type"]), "OUTPUT_NODE", False)]


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- CI checks -----------------------------------------------------------------------------------------------

def test_the_three_required_workflows_exist():
    names = set(WF_IDS)
    assert {"dynode_interpolation", "dynode_editing", "dynode_interpolation_sde"} <= names, names
    for name in WF_IDS:
        assert os.path.isfile(os.path.join(ROOT, "workflows", name + ".jpg")), f"{name}.jpg thumbnail missing"


def test_sde_workflow_is_the_ode_one_with_the_family_node_swapped():
    ode = load(os.path.join(ROOT, "workflows", "dynode_interpolation.json"))
    sde = load(os.path.join(ROOT, "workflows", "dynode_interpolation_sde.json"))
    spec = pack_specs()
    a, b = ui_to_api(ode, spec), ui_to_api(sde, spec)
    assert a.keys() == b.keys()
    diff = [k for k in a if a[k]["class_type"] != b[k]["class_type"] or a[k]["inputs"] != b[k]["inputs"]]
    kinds = {(a[k]["class_type"], b[k]["class_type"]) for k in diff}
    assert kinds <= {("DynodeNeuralODE", "DynodeNeuralSDE"), ("SaveAnimatedWEBP", "SaveAnimatedWEBP"),
                     ("SaveImage", "SaveImage")}, diff
    assert ("DynodeNeuralODE", "DynodeNeuralSDE") in kinds
    assert all(a[k]["inputs"]["filename_prefix"] != b[k]["inputs"]["filename_prefix"]
               for k in diff if a[k]["class_type"] != "DynodeNeuralODE")


@pytest.mark.parametrize("path", WORKFLOWS, ids=WF_IDS)
def test_workflow_is_valid_ui_json(path):
    wf = load(path)
    specs = pack_specs()
    assert wf["version"] == 0.4 and {"nodes", "links", "last_node_id", "last_link_id"} <= set(wf)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]) and max(nodes) <= wf["last_node_id"]
    for node in executed_nodes(wf):
        assert node["type"] in specs, f"unknown node type {node['type']}"
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        assert link_id <= wf["last_link_id"]
        s, d = nodes[src], nodes[dst]
        out = s["outputs"][src_slot]
        inp = d["inputs"][dst_slot]
        assert out["type"] == kind == inp["type"], (link_id, out["type"], kind, inp["type"])
        assert link_id in out["links"] and inp["link"] == link_id
        s_spec, d_spec = specs[s["type"]], specs[d["type"]]
        assert s_spec["output"][src_slot] == kind, f"link {link_id}: {s['type']} output {src_slot} is not {kind}"
        entry = {**d_spec.get("required", {}), **d_spec.get("optional", {})}[inp["name"]]
        assert entry[0] == kind, f"link {link_id}: {d['type']}.{inp['name']} takes {entry[0]}, not {kind}"
    for node in executed_nodes(wf):
        spec = specs[node["type"]]
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        for name, entry in spec.get("required", {}).items():
            if not is_widget(entry):
                assert name in linked, f"node {node['id']} ({node['type']}): required input {name!r} unconnected"
        for name, value in widget_values(node, spec).items():
            kind, opts = spec.get("required", {}).get(name) or spec["optional"][name]
            where = f"node {node['id']} ({node['type']}).{name} = {value!r}"
            if isinstance(kind, list):
                assert value in kind, f"{where} is not one of {kind}"
            elif kind == "INT":
                assert isinstance(value, int) and not isinstance(value, bool), where
            elif kind == "FLOAT":
                assert isinstance(value, (int, float)) and not isinstance(value, bool), where
            elif kind == "BOOLEAN":
                assert isinstance(value, bool), where
            elif kind == "STRING":
                assert isinstance(value, str), where
            if kind in ("INT", "FLOAT"):
                assert opts.get("min", value) <= value <= opts.get("max", value), f"{where} out of range"
        for i, out in enumerate(node.get("outputs", [])):
            assert out["type"] == spec["output"][i], (node["type"], i, out["type"])
    assert output_node_ids(ui_to_api(wf, specs)), "the workflow has no output node"


# Small settings for CI; the real values run in a real ComfyUI (see the module docstring).
FAST = {"DynodeInvert": {"steps": 4}, "DynodeNeuralODE": {"iterations": 10}, "DynodeNeuralCDE": {"iterations": 10},
        "DynodeNeuralSDE": {"iterations": 10}}


def _stand_in(class_type, inputs, sink):
    if class_type in ("PreviewImage", "SaveImage", "SaveAnimatedWEBP"):
        images = inputs["images"]
        assert images.ndim == 4 and images.shape[-1] == 3 and images.dtype == torch.float32
        assert 0 <= float(images.min()) and float(images.max()) <= 1
        sink.append((class_type, images))
        return ()
    if class_type == "ImageStitch":
        a, b = inputs["image1"], inputs.get("image2")
        if b is None:
            return (a,)
        n = max(a.shape[0], b.shape[0])
        a = torch.cat([a, a[-1:].expand(n - a.shape[0], -1, -1, -1)])
        b = torch.cat([b, b[-1:].expand(n - b.shape[0], -1, -1, -1)])
        horizontal = inputs["direction"] in ("left", "right")
        if inputs["match_image_size"]:
            size = (a.shape[1], round(a.shape[1] * b.shape[2] / b.shape[1])) if horizontal else \
                   (round(a.shape[2] * b.shape[1] / b.shape[2]), a.shape[2])
            b = F.interpolate(b.movedim(-1, 1), size=size, mode="bilinear").movedim(1, -1)
        first, second = (b, a) if inputs["direction"] in ("left", "up") else (a, b)
        return (torch.cat([first, second], dim=2 if horizontal else 1),)
    if class_type == "LoadVideo":
        path = os.path.join(EXAMPLE_INPUTS, inputs["file"])
        assert os.path.isfile(path), f"Load Video: {inputs['file']} is not among the pack's example inputs"
        return ({"path": path},)
    if class_type == "GetVideoComponents":
        from dynode_core.video_stream import VideoReader
        with VideoReader(inputs["video"]["path"]) as r:
            pixels, _ = r.read()
            audio = {"from": inputs["video"]["path"]} if r.has_audio else None
            return (torch.from_numpy(pixels).float() / 255, audio, float(r.fps))
    if class_type == "CreateVideo":
        assert 1.0 <= inputs["fps"] <= 120.0, inputs["fps"]
        return ({"images": inputs["images"], "fps": inputs["fps"], "audio": inputs.get("audio")},)
    if class_type == "SaveVideo":
        sink.append((class_type, inputs["video"]["images"]))
        return ()
    if class_type == "ImageScaleBy":
        image = inputs["image"].movedim(-1, 1)
        size = (round(image.shape[2] * inputs["scale_by"]), round(image.shape[3] * inputs["scale_by"]))
        return (F.interpolate(image, size=size, mode="bilinear").clamp(0, 1).movedim(1, -1),)
    raise AssertionError(f"no stand-in for core node {class_type}")


def execute(prompt, overrides=None):
    """Run an API prompt through the node classes, output nodes and their dependencies only, each node once."""
    overrides = overrides or {}
    results, sink = {}, []

    def run(node_id, stack=()):
        if node_id in results:
            return results[node_id]
        assert node_id not in stack, f"cycle through node {node_id}"
        node = prompt[node_id]
        kwargs = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                kwargs[name] = run(value[0], stack + (node_id,))[value[1]]
            else:
                kwargs[name] = value
        kwargs.update(overrides.get(node["class_type"], {}))
        cls = comfy_nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
        with torch.inference_mode():
            if cls is None:
                out = _stand_in(node["class_type"], kwargs, sink)
            else:
                out = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(out, dict):
            out = out.get("result", ())
        results[node_id] = out
        return out

    for node_id in output_node_ids(prompt):
        run(node_id)
    return results, sink


@pytest.fixture
def small_generator(monkeypatch):
    """The built-in generator when its asset exists, else a tiny random one in its place."""
    if dc.checkpoints.BUILTIN_GENERATOR.is_file():
        return
    torch.manual_seed(0)
    tiny = dc.Generator(32, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16}).eval()
    tiny.estimate_w_avg(500)
    real = dc.load_generator
    monkeypatch.setattr(dc, "load_generator", lambda p, **kw: tiny if str(p) == "builtin" else real(p, **kw))


@pytest.mark.parametrize("path", WORKFLOWS, ids=WF_IDS)
def test_workflow_runs_through_the_node_classes(path, small_generator):
    wf = load(path)
    prompt = ui_to_api(wf, pack_specs())
    if any(v["class_type"] == "DynodeAlignFaces" for v in prompt.values()):
        from dynode_core.alignment import faces_available
        if not faces_available():
            pytest.skip("Align Faces needs the optional extra 'faces' (pip install -e '.[faces]')")
    results, sink = execute(prompt, FAST)
    assert sink, "no images reached an output node"
    for class_type, images in sink:
        assert images.shape[0] >= 1 and images.shape[1] >= 32
    # every executed node produced its declared outputs
    for node_id, out in results.items():
        ct = prompt[node_id]["class_type"]
        declared = pack_specs()[ct]["output"]
        assert len(out) == len(declared), ct


# --- real ComfyUI (opt-in) ---------------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, path):
    with urllib.request.urlopen(url + path, timeout=60) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def comfyui():
    url = os.environ.get("DYNODE_COMFYUI_URL")
    path = os.environ.get("DYNODE_COMFYUI_PATH")
    if not url and not path:
        pytest.skip("set DYNODE_COMFYUI_URL (a running ComfyUI with the pack) or DYNODE_COMFYUI_PATH (a ComfyUI "
                    "checkout with the pack in custom_nodes/) to run the workflows in a real ComfyUI")
    proc = None
    if not url:
        port = _free_port()
        python = os.environ.get("DYNODE_COMFYUI_PYTHON", sys.executable)
        log = open(os.path.join(tempfile.gettempdir(), "dynode_comfyui_test_server.log"), "w")
        proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)],
                                cwd=path, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while True:
            try:
                _get(url, "/system_stats")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"ComfyUI did not start; see {log.name}")
                time.sleep(2)
    url = url.rstrip("/")
    try:
        info = _get(url, "/object_info")
        missing = [k for k in comfy_nodes.NODE_CLASS_MAPPINGS if k not in info]
        assert not missing, f"the server at {url} lacks the pack's nodes {missing}: link this repo into " \
                            f"ComfyUI/custom_nodes/ and restart it (see docs/comfyui.md)"
        yield url, info
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()


def test_core_node_list_matches_comfyui(comfyui):
    _, info = comfyui
    real = server_specs(info)
    for name, spec in CORE_NODES.items():
        assert name in real, f"core node {name} missing from this ComfyUI"
        for section in ("required", "optional"):
            for inp, (kind, opts) in spec.get(section, {}).items():
                rkind, ropts = real[name][section][inp]
                assert rkind == kind, (name, inp)
                for k in ("min", "max"):
                    assert opts.get(k) == ropts.get(k, opts.get(k)), (name, inp, k)
        assert real[name]["output"] == spec["output"]


def _wait(url, prompt_id, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = _get(url, f"/history/{prompt_id}").get(prompt_id)
        if h and h.get("status", {}).get("completed") is not None and (h["status"]["completed"]
                                                                       or h["status"]["status_str"] == "error"):
            return h
        time.sleep(2)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s")


def _check_history(h, prompt):
    errors = [m for m in h["status"]["messages"] if m[0] in ("execution_error", "execution_interrupted")]
    assert h["status"]["status_str"] == "success" and not errors, json.dumps(errors, indent=1)[:4000]
    images = [img for out in h["outputs"].values() for img in out.get("images", [])]
    assert images, "no output images"
    assert set(output_node_ids(prompt)) <= set(h["outputs"]), "an output node produced nothing"


@pytest.mark.parametrize("path", WORKFLOWS, ids=WF_IDS)
def test_workflow_runs_in_real_comfyui(path, comfyui):
    url, info = comfyui
    wf = load(path)
    browser = os.environ.get("DYNODE_COMFYUI_BROWSER")
    timeout = float(os.environ.get("DYNODE_COMFYUI_TIMEOUT", 1800))
    prompt = ui_to_api(wf, server_specs(info))
    if browser:
        h = _run_in_browser(url, wf, browser, timeout)
    else:
        body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex,
                           "extra_data": {"extra_pnginfo": {"workflow": wf}}}).encode()
        req = urllib.request.Request(url + "/prompt", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                prompt_id = json.load(r)["prompt_id"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"ComfyUI refused the prompt: {e.read().decode()[:4000]}") from None
        h = _wait(url, prompt_id, timeout)
    _check_history(h, prompt)


def _run_in_browser(url, wf, chromium, timeout):
    sync_api = pytest.importorskip("playwright.sync_api")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            page.wait_for_function("() => window.app && window.app.graph", timeout=120000)
            before = set(_get(url, "/history"))
            page.evaluate("async (wf) => { await app.loadGraphData(wf); }", wf)
            dialogs = page.evaluate("() => Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText)")
            assert not any("missing" in d.lower() for d in dialogs), dialogs
            page.evaluate("async () => { await app.queuePrompt(0, 1); }")
            deadline = time.time() + 60
            while True:
                new = [k for k in _get(url, "/history") if k not in before]
                queue = _get(url, "/queue")
                if new or queue["queue_running"] or queue["queue_pending"]:
                    break
                dialogs = page.evaluate("() => Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText)")
                assert time.time() < deadline, f"nothing was queued; dialogs: {dialogs}"
                time.sleep(1)
            queued = queue["queue_running"] + queue["queue_pending"]
            prompt_id = new[0] if new else queued[0][1]
            return _wait(url, prompt_id, timeout)
        finally:
            browser.close()
