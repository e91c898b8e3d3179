"""A non-editable install of the wheel carries the shipped models and runs them with no source tree around."""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_loads_the_shipped_model(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("strcnn_sdk-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {f"strcnn_sdk/weights/{name}" for name in ("models.json", "MODEL_CARD.md", "MODEL_CARD_fast.md")}
    for stem in ("strcnn_dtb", "strcnn_dtb_fast"):
        shipped |= {f"strcnn_sdk/weights/{stem}{precision}.{ext}" for precision in ("", ".int8", ".fp16")
                    for ext in ("onnx", "json")}
    assert shipped <= set(names)
    assert not any(n.startswith("export/") or n.endswith(".pt") for n in names)

    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True)
    # The fresh environment sees its own strcnn_sdk first and borrows only the dependencies from this one.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    code = f"""
import sys, warnings
sys.path.extend({sorted(deps)!r})
import numpy as np
from strcnn_sdk import Deblurrer
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    d = Deblurrer()
assert any("UNTRAINED" in str(w.message) for w in caught) == (not d.model.trained)
outs = [d.push(np.zeros((24, 30, 3), np.uint8)) for _ in range(3)] + d.flush()
fast = Deblurrer("fast")
assert fast.model.meta["width"] == 32 and fast.model.path.parent == d.model.path.parent
import strcnn_sdk, strcnn_sdk.cli  # the command line, and the video package it imports, come with the wheel
assert strcnn_sdk.iter_frames.__module__ == "strcnn_sdk.video.reading"
print(strcnn_sdk.__file__, d.model.path, [o.shape for o in outs if o is not None])
"""
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    package, model, shapes = run.stdout.split(maxsplit=2)
    assert package.startswith(str(env)) and model.startswith(str(env))
    assert shapes.strip() == "[(24, 30, 3), (24, 30, 3), (24, 30, 3)]"
