"""The README's Python examples run as written, from a folder holding the sample clip."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_python_examples_run_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "sample.mp4", tmp_path / "examples")
    # as in a clone once the test command's npm ci has run: TypeScript files that share video extensions
    typings = tmp_path / "examples" / "web" / "node_modules" / "escalade"
    typings.mkdir(parents=True)
    for name in ("index.d.mts", "index.d.ts"):
        (typings / name).write_text("export default function (directory: string): string;\n")
    runs = [subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path)
            for block in blocks]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert (tmp_path / "sample_sharp.mkv").stat().st_size > 0 and "60/60" in runs[0].stdout
