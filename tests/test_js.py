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

from strcnn_sdk import Deblurrer, UntrainedModelWarning

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "examples" / "golden"


def npm_test(folder: Path) -> str:
    if shutil.which("node") is None:
        pytest.skip("needs Node.js")
    if not (folder / "node_modules").is_dir():
        pytest.skip(f"run `npm ci --prefix {folder.relative_to(ROOT)}` first")
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


def test_browser_reproduces_the_golden_sequence_and_deblurs_the_camera():
    if not Path("/usr/bin/chromium").exists() and shutil.which("chromium") is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium)")
    out = npm_test(ROOT / "examples" / "web")
    assert "onnxruntime-web in Chromium" in out and "camera mode on WebAssembly" in out
