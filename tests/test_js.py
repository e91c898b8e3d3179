"""The same model from JavaScript: onnxruntime-node and onnxruntime-web (in headless Chromium) reproduce the
Python runtime's output on the committed golden sequence (examples/golden, made by `python -m export.golden`)."""

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from strcnn_sdk import Deblurrer, Model, UntrainedModelWarning

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "examples" / "golden"


def needs_node(folder: Path) -> None:
    """Skip unless Node.js and the example's packages are installed."""
    if shutil.which("node") is None:
        pytest.skip("needs Node.js")
    if not (folder / "node_modules").is_dir():
        pytest.skip(f"run `npm ci --prefix {folder.relative_to(ROOT)}` first")


def npm_test(folder: Path) -> str:
    needs_node(folder)
    run = subprocess.run(["npm", "test"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_python_runtime_still_matches_the_golden_sequence():
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    expected = np.fromfile(GOLDEN / manifest["expected"], "<f4").reshape(-1, manifest["height"], manifest["width"], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        deblurrer = Deblurrer(GOLDEN / manifest["model"])
    frames = [cv2.cvtColor(cv2.imread(str(GOLDEN / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
              for name in manifest["frames"]]
    got = np.stack(list(deblurrer.stream(frames)))
    assert np.abs(got - expected).max() <= manifest["tolerance"]


def test_node_reproduces_the_golden_sequence():
    out = npm_test(ROOT / "examples" / "node")
    assert "max abs difference" in out


def test_node_example_runs_the_fast_model_by_name_as_python_does(tmp_path):
    """`node deblur.mjs fast IN OUT` writes the frames that the Python runtime's fast model (fp32, the file the
    JavaScript runtimes load) gives, to within a level of 8-bit rounding; a name that is no model says so."""
    folder = ROOT / "examples" / "node"
    needs_node(folder)
    run = subprocess.run(["node", "deblur.mjs", "fast", GOLDEN, tmp_path], cwd=folder, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and "wrote 5 frames" in run.stdout, run.stdout + run.stderr
    names = json.loads((GOLDEN / "golden.json").read_text())["frames"]
    frames = [cv2.cvtColor(cv2.imread(str(GOLDEN / name)), cv2.COLOR_BGR2RGB) for name in names]
    expected = list(Deblurrer(Model("fast", providers="cpu", precision="fp32")).stream(frames))
    for name, want in zip(names, expected, strict=True):
        got = cv2.cvtColor(cv2.imread(str(tmp_path / name)), cv2.COLOR_BGR2RGB)
        assert np.abs(got.astype(int) - want).max() <= 1, name
    assert any(np.abs(w.astype(int) - f).max() > 1 for w, f in zip(expected, frames))  # it changed the frames
    unknown = subprocess.run(["node", "deblur.mjs", "fastest", GOLDEN, tmp_path / "x"], cwd=folder,
                             capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 1 and "neither a shipped model (full, fast) nor an .onnx file" in unknown.stderr


def test_browser_reproduces_the_golden_sequence_and_deblurs_the_camera():
    if not Path("/usr/bin/chromium").exists() and shutil.which("chromium") is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium)")
    out = npm_test(ROOT / "examples" / "web")
    assert "onnxruntime-web in Chromium" in out and "camera mode on WebAssembly" in out
