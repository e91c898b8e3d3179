"""Reliability: fuzzed frames, long and pathological streams, threads, damaged files and damaged models.

docs/RELIABILITY.md lists every case with what happens; the tables there are read here and every row is checked,
so the document stays true.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media import frames_of, make_video
from strcnn_sdk import Deblurrer, Model
from strcnn_sdk.model import shipped_model_path
from strcnn_sdk.system import rss_mib
from strcnn_sdk.video import Frame, Reader

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"
SAMPLE = ROOT / "examples" / "sample.mp4"


def doc_table(section: str) -> list[list[str]]:
    """The rows of the first table under a `## section` heading of RELIABILITY.md, as lists of cell texts."""
    text = DOC.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in body.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # past the header and its rule


def code(cell: str) -> str:
    """The text of the first `code span` in a table cell."""
    return re.search(r"`([^`]+)`", cell).group(1)


@pytest.fixture(scope="module")
def shipped() -> Model:
    return Model(providers="cpu")  # the default precision for this CPU


# --- 1. Frames: listed cases, then fuzzing ---------------------------------------------------------------------

@pytest.mark.parametrize("row", doc_table("Frames"), ids=lambda row: code(row[0]))
def test_listed_frames(tiny_model, row):
    frame = eval(code(row[0]), {"np": np})
    deblurrer = Deblurrer(tiny_model)
    if row[1] == "accepted":
        out = list(deblurrer.stream([frame] * 3))
        assert len(out) == 3 and all(o.shape == frame.shape and o.dtype == frame.dtype for o in out)
        return
    error = {"TypeError": TypeError, "ValueError": ValueError}[row[1]]
    with pytest.raises(error, match=re.escape(code(row[2]))):
        deblurrer.push(frame)


DTYPES = st.sampled_from([np.uint8, np.uint8, np.float32, np.float32, np.float32, np.float64, np.float16, np.int16,
                          np.bool_, np.dtype(">f4")]).map(np.dtype)
LEADS = st.sampled_from([(), (), (), (1,), (2,), (1, 1)])
SIZES = st.tuples(st.integers(1, 40), st.integers(1, 40)) | st.sampled_from(
    [(1, 1), (1, 2), (2, 1), (0, 4), (1, 1500), (1500, 1), (3, 1001)])


@st.composite
def arrays(draw, size: tuple[int, int], dtype: np.dtype, lead: tuple[int, ...]) -> np.ndarray:
    """Frames with a random value range, channel count and memory layout."""
    channels = draw(st.sampled_from([3, 3, 3, 3, 1, 4]))
    shape = (*lead, *size, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from(["unit", "unit", "unit", "bytes", "signed", "edges"]))
    values = {"unit": rng.random(shape), "bytes": rng.integers(0, 256, shape).astype(float),
              "signed": rng.random(shape) * 2 - 1, "edges": rng.integers(0, 2, shape).astype(float)}[scale]
    array = rng.integers(0, 256, shape, np.uint8) if dtype == np.uint8 else values.astype(dtype)
    if dtype.kind == "f" and array.size and draw(st.integers(0, 4)) == 0:
        array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    layout = draw(st.sampled_from(["c", "fortran", "reversed", "strided"]))
    if layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "reversed":
        array = array[..., ::-1, :, :]
    elif layout == "strided":
        array = np.repeat(array, 2, axis=-2)[..., ::2, :]
    return array


@st.composite
def streams(draw) -> list[np.ndarray]:
    """One to five frames of one size, dtype and stream count, each with some chance of another of one of these."""
    base = {"size": draw(SIZES), "dtype": draw(DTYPES), "lead": draw(LEADS)}
    frames = []
    for _ in range(draw(st.integers(1, 5))):
        spec = dict(base)
        changed = draw(st.sampled_from([None, None, None, None, "size", "dtype", "lead"]))
        if changed:
            spec[changed] = draw({"size": SIZES, "dtype": DTYPES, "lead": LEADS}[changed])
        frames.append(draw(arrays(**spec)))
    return frames


def frame_problem(frame: np.ndarray) -> type[Exception] | None:
    """What `push` must raise for a frame on its own (None: accepted), as the documentation promises."""
    if frame.dtype not in (np.uint8, np.float32):
        return TypeError
    if frame.ndim not in (3, 4) or frame.shape[-1] != 3 or frame.size == 0:
        return ValueError
    if frame.dtype == np.float32 and not (np.isfinite(frame).all() and 0 <= frame.min() and frame.max() <= 1):
        return ValueError
    return None


@settings(max_examples=1000, deadline=5000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=streams(), color=st.sampled_from(["rgb", "bgr", "RGB", "yuv", ""]), method=st.sampled_from(["push", "step"]))
def test_fuzzed_frames_give_a_frame_or_a_clear_error(tiny_model, frames, color, method):
    """Every call returns frames of the input's shape and dtype (float ones in [0, 1]), or raises TypeError or
    ValueError; a refused frame leaves the stream as it was."""
    if color.lower() not in ("rgb", "bgr"):
        with pytest.raises(ValueError, match="color must be"):
            Deblurrer(tiny_model, color=color)
        return
    deblurrer = Deblurrer(tiny_model, color=color)
    accepted: list[np.ndarray] = []
    out: list[np.ndarray] = []
    for frame in frames:
        if method == "step":  # a window of three copies: the checks are those of its frames
            frame = np.stack([frame] * 3, axis=-4)
        problem = frame_problem(frame[..., 0, :, :, :] if method == "step" else frame)
        first = accepted[0] if accepted else None
        if problem is None and first is not None and (frame.shape != first.shape or frame.dtype != first.dtype):
            problem = ValueError  # one size and dtype per stream
        if problem is not None:
            with pytest.raises(problem) as caught:
                getattr(deblurrer, method)(frame)
            assert len(str(caught.value)) > 20  # says what is wrong
            continue
        accepted.append(frame)
        result = getattr(deblurrer, method)(frame)
        out += [result] if result is not None else []
    if method == "push":
        out += deblurrer.flush()
    assert len(out) == len(accepted)
    for frame, sharp in zip(accepted, out):
        expected = frame.shape[:-4] + frame.shape[-3:] if method == "step" else frame.shape
        assert sharp.shape == expected and sharp.dtype == frame.dtype
        if sharp.dtype == np.float32:
            assert np.isfinite(sharp).all() and sharp.min() >= 0 and sharp.max() <= 1


# --- 2. Long and pathological streams on the shipped model ----------------------------------------------------

SIZE = (120, 160)


def natural_frames() -> list[np.ndarray]:
    """The sample clip at 160x120, float32: natural footage (a photograph under rendered camera shake)."""
    with Reader(SAMPLE) as reader:
        return [cv2.resize(item.rgb, SIZE[::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255
                for item in reader if isinstance(item, Frame)]


def state_ranges(model: Model, frames) -> np.ndarray:
    """Push float32 frames through a fresh Deblurrer: per step (min F, max F, min h~, max h~), checking that the
    state stays finite and every output lies in [0, 1]."""
    deblurrer, ranges = Deblurrer(model), []
    for frame in frames:
        sharp = deblurrer.push(frame)
        if sharp is not None:
            assert 0 <= sharp.min() and sharp.max() <= 1
        f, h = deblurrer.state.F, deblurrer.state.h
        assert np.isfinite(f).all() and np.isfinite(h).all()
        ranges.append((f.min(), f.max(), h.min(), h.max()))
    for sharp in deblurrer.flush():
        assert 0 <= sharp.min() and sharp.max() <= 1
    return np.array(ranges)


def envelope(ranges: np.ndarray) -> tuple[float, float, float, float]:
    return ranges[:, 0].min(), ranges[:, 1].max(), ranges[:, 2].min(), ranges[:, 3].max()


def describe(ranges: np.ndarray) -> str:
    f_lo, f_hi, h_lo, h_hi = envelope(ranges)
    return f"F [{f_lo:.3f}, {f_hi:.3f}], h~ [{h_lo:.3f}, {h_hi:.3f}]"


@pytest.fixture(scope="module")
def natural_range(shipped) -> np.ndarray:
    """State ranges on natural footage: the sample clip and the held-out clips (rendered from photographs that
    training never saw)."""
    data = pytest.importorskip("export.data")
    clips = [natural_frames()] + [list(blurry.astype(np.float32) / 255) for _, blurry, _ in data.test_clips()]
    ranges = np.concatenate([state_ranges(shipped, clip) for clip in clips])
    print(f"\n{shipped.path.name} on natural footage: {describe(ranges)}")
    return ranges


def pathological(kind: str, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    black, white = np.zeros((*SIZE, 3), np.float32), np.ones((*SIZE, 3), np.float32)
    make = {"black": lambda i: black, "white": lambda i: white, "flashing": lambda i: white if i % 2 else black,
            "noise": lambda i: rng.random((*SIZE, 3), np.float32)}[kind]
    return [make(i) for i in range(steps)]


def test_long_stream_memory_stays_flat(shipped):
    """2000 steps at 160x120 of natural footage: resident memory grows less than 20 MiB after warm-up."""
    frames = [(f * 255).astype(np.uint8) for f in natural_frames()]
    deblurrer = Deblurrer(shipped)
    for frame in frames[:50]:
        deblurrer.push(frame)
    start = rss_mib()
    for i in range(2000):
        deblurrer.push(frames[i % len(frames)])
    growth = rss_mib() - start
    print(f"\n{shipped.path.name}: 2000 steps at 160x120, RSS {start:.1f} MiB after warm-up, growth {growth:+.2f} MiB")
    assert growth < 20


@pytest.mark.parametrize("kind", ["black", "white", "noise", "flashing"])
def test_pathological_streams_keep_the_state_bounded(shipped, natural_range, kind):
    """500 steps of each: the state stays finite, the output in [0, 1], and the state does not drift (the mean of its
    per-step largest magnitude over steps 300-500 is within 2% of that over steps 100-300). Constant and noise input
    keep it within the range of natural footage; full-scale flashing every frame may leave it (see RELIABILITY.md)."""
    ranges = state_ranges(shipped, pathological(kind, 500))
    magnitude = np.abs(ranges).reshape(-1, 2, 2).max(axis=2)  # per step: max |F|, max |h~|
    early, late = magnitude[100:300].mean(axis=0), magnitude[300:].mean(axis=0)
    print(f"\n{shipped.path.name}, {kind}: {describe(ranges)}; mean largest |F|, |h~| over steps 100-300: "
          f"{early[0]:.4f}, {early[1]:.4f}; 300-500: {late[0]:.4f}, {late[1]:.4f}")
    assert (late <= early * 1.02 + 1e-4).all()
    lo_f, hi_f, lo_h, hi_h = envelope(natural_range)
    f_lo, f_hi, h_lo, h_hi = envelope(ranges)
    if kind == "flashing":
        span = max(hi_h - lo_h, hi_f - lo_f)
        assert f_lo >= lo_f - span and f_hi <= hi_f + span and h_lo >= lo_h - span and h_hi <= hi_h + span
    else:
        assert lo_f <= f_lo and f_hi <= hi_f and lo_h <= h_lo and h_hi <= hi_h


# --- 3. Threads ------------------------------------------------------------------------------------------------

def test_threads_with_their_own_deblurrers_over_one_model_equal_sequential(shipped):
    """Four threads, each streaming its own clip through its own Deblurrer over one shared Model, started together:
    exactly what the same clips give one after another."""
    rng = np.random.default_rng(3)
    clips = [rng.integers(0, 256, (20, 48, 64, 3), np.uint8) for _ in range(4)]
    sequential = [np.stack(list(Deblurrer(shipped).stream(clip))) for clip in clips]
    results: list[np.ndarray | None] = [None] * 4
    start = threading.Barrier(4)

    def work(i: int) -> None:
        deblurrer = Deblurrer(shipped)
        start.wait()
        results[i] = np.stack(list(deblurrer.stream(clips[i])))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, expected in zip(results, sequential):
        np.testing.assert_array_equal(got, expected)


# --- 4 and 5. Damaged and unusual files and models through `strcnn deblur` -------------------------------------

@dataclass
class Case:
    """One `strcnn deblur` run: its arguments under the case's folder, and how to run it."""

    args: list[str]
    output: str = "out/result.mp4"
    mode: str = "plain"  # plain | unprivileged | full-disk | SIGINT | SIGTERM
    setup: Callable[[Path], None] = field(default=lambda root: None)


def _video(name: str, **kwargs) -> Callable[[Path], None]:
    return lambda root: make_video(root / "in" / name, **kwargs)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / "in" / name).write_bytes(data)


def _cut(name: str, frames: int, share: float) -> Callable[[Path], None]:
    """The first `share` of a video's bytes under `name` (its container from the suffix)."""
    def setup(root: Path) -> None:
        whole = root / "in" / f"whole{Path(name).suffix}"
        make_video(whole, frames=frames, size=(96, 128))
        data = whole.read_bytes()
        (root / "in" / name).write_bytes(data[: int(len(data) * share)])
    return setup


def _scrambled(root: Path) -> None:
    """An mp4 whose middle third of bytes is scrambled: header and index intact, frame data damaged."""
    make_video(root / "in" / "full.mp4", frames=30, size=(96, 128))
    data = bytearray((root / "in" / "full.mp4").read_bytes())
    third = len(data) // 3
    data[third:2 * third] = bytes((b * 7 + 13) % 256 for b in data[third:2 * third])
    (root / "in" / "scrambled.mp4").write_bytes(bytes(data))


def _frameless(root: Path) -> None:
    import av

    with av.open(str(root / "in" / "frameless.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()
        container.mux(stream.encode(None))


def _images(sizes: list[tuple[int, int]], damaged: bool = False) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        folder = root / "in" / "frames"
        folder.mkdir()
        for i, (h, w) in enumerate(sizes):
            cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((h, w, 3), 40 * i, np.uint8))
        if damaged:
            (folder / f"{len(sizes):03d}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return setup


def _locked(setup: Callable[[Path], None], name: str) -> Callable[[Path], None]:
    def locked(root: Path) -> None:
        setup(root)
        os.chmod(root / "in" / name, 0)
    return locked


def _read_only_folder(root: Path) -> None:
    make_video(root / "in" / "in.mp4", frames=2)
    (root / "out" / "locked").mkdir()
    os.chmod(root / "out" / "locked", 0o555)


def _existing(root: Path) -> None:
    make_video(root / "in" / "in.mp4", frames=2)
    (root / "out" / "result.mp4").write_bytes(b"keep me")


def _existing_folder(root: Path) -> None:
    _scrambled(root)
    (root / "out" / "frames").mkdir()
    (root / "out" / "frames" / "frame_000000.png").write_bytes(b"keep me")


def _model(damage: str) -> Callable[[Path], None]:
    """A copy of the shipped identity model in in/model.onnx, damaged one way; and a valid input video."""
    def setup(root: Path) -> None:
        make_video(root / "in" / "in.mp4", frames=4)
        model = root / "in" / "model.onnx"
        source = shipped_model_path().with_name("identity.onnx")
        shutil.copy(source, model)
        sidecar = json.loads(source.with_suffix(".json").read_text())
        if damage == "corrupt":
            model.write_bytes(model.read_bytes()[:200])  # cut in the middle of the graph
            sidecar.pop("onnx_sha256")
        elif damage == "mismatched":
            shutil.copy(shipped_model_path(), model)  # the trained model beside the identity model's sidecar
        elif damage == "contract":
            import onnx

            proto = onnx.load(model)
            for node in proto.graph.node:
                node.input[:] = ["images" if name == "frames" else name for name in node.input]
            proto.graph.input[0].name = "images"
            data = proto.SerializeToString()
            model.write_bytes(data)
            sidecar["onnx_sha256"] = hashlib.sha256(data).hexdigest()
        if damage == "no-sidecar":
            return
        model.with_suffix(".json").write_text(json.dumps(sidecar))
    return setup


MODEL = ["--model", "in/model.onnx"]
CASES: dict[str, Case] = {
    "missing input": Case(["in/missing.mp4"]),
    "zero-byte file": Case(["in/empty.mp4"], setup=_write("empty.mp4", b"")),
    "text file named .mp4": Case(["in/text.mp4"], setup=_write("text.mp4", b"this is not a video\n" * 100)),
    "truncated mp4": Case(["in/truncated.mp4"], setup=_cut("truncated.mp4", 20, 1 / 3)),
    "damaged mid-file": Case(["in/scrambled.mp4"], setup=_scrambled),
    # Matroska needs no index: the frames before the cut still decode
    "Matroska cut in half": Case(["in/cut.mkv"], output="out/result.mkv", setup=_cut("cut.mkv", 30, 1 / 2)),
    "video without frames": Case(["in/frameless.mp4"], setup=_frameless),
    "unreadable input": Case(["in/in.mp4"], mode="unprivileged", setup=_locked(_video("in.mp4", frames=2), "in.mp4")),
    "unreadable image folder": Case(["in/frames"], mode="unprivileged",
                                    setup=_locked(_images([(8, 8)] * 2), "frames")),
    "images of two sizes": Case(["in/frames"], setup=_images([(8, 8), (8, 8), (8, 10)])),
    "damaged image": Case(["in/frames"], setup=_images([(8, 8)] * 2, damaged=True)),
    "output folder missing": Case(["in/in.mp4"], output="out/missing/result.mp4", setup=_video("in.mp4", frames=2)),
    "output folder is a file": Case(["in/in.mp4"], output="in/in.mp4/result.mp4", setup=_video("in.mp4", frames=2)),
    "output folder read-only": Case(["in/in.mp4"], output="out/locked/result.mp4", mode="unprivileged",
                                    setup=_read_only_folder),
    "output exists": Case(["in/in.mp4"], setup=_existing),
    "output folder exists, run fails": Case(["in/scrambled.mp4", "--force"], output="out/frames",
                                            setup=_existing_folder),
    "output is the input": Case(["in/in.mp4", "--force"], output="in/in.mp4", setup=_video("in.mp4", frames=2)),
    "container that cannot hold the codec": Case(["in/in.mp4", "--codec", "libx264"], output="out/result.webm",
                                                 setup=_video("in.mp4", frames=2)),
    "GIF output": Case(["in/in.mp4"], output="out/result.gif", setup=_video("in.mp4", frames=2)),
    "disk full": Case(["in/in.mp4"], mode="full-disk", setup=_video("in.mp4", frames=20, size=(96, 128))),
    "Ctrl-C": Case(["in/in.mp4"], mode="SIGINT", setup=_video("in.mp4", frames=400, size=(240, 320))),
    "killed (SIGTERM)": Case(["in/in.mp4"], mode="SIGTERM", setup=_video("in.mp4", frames=400, size=(240, 320))),
    "one-frame video": Case(["in/in.mp4"], setup=_video("in.mp4", frames=1)),
    "missing model": Case(["in/in.mp4", *MODEL], setup=_video("in.mp4", frames=2)),
    "corrupt model": Case(["in/in.mp4", *MODEL], setup=_model("corrupt")),
    "model without sidecar": Case(["in/in.mp4", *MODEL], setup=_model("no-sidecar")),
    "sidecar of another model": Case(["in/in.mp4", *MODEL], setup=_model("mismatched")),
    "model off the contract": Case(["in/in.mp4", *MODEL], setup=_model("contract")),
}


def _unprivileged() -> None:
    """In the child before exec: as root, drop the capabilities that override file permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the bounding set, so the command meets permissions like a user."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_case(case: Case, root: Path) -> tuple[int, str, list[str]]:
    """Run `strcnn deblur` for a case in `root`: (exit code, stderr, what the output's folder holds after)."""
    command = [sys.executable, "-m", "strcnn_sdk.cli", "deblur", *case.args, case.output]
    out_dir = root / Path(case.output).parent
    if case.mode == "full-disk":
        # a 16 KiB tmpfs over the output folder, in a private mount namespace; listed before it vanishes
        script = 'mount -t tmpfs -o size=16k tmpfs out || exit 97; "$@"; rc=$?; ls -A out; exit $rc'
        try:
            run = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh",
                                  *command], cwd=root, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            run = None
        if run is None or run.returncode == 97 or (run.returncode == 1 and "unshare:" in run.stderr):
            pytest.skip("no small filesystem can be made here: needs unshare(1) with user and mount namespaces")
        return run.returncode, run.stderr, run.stdout.split()
    if case.mode in ("SIGINT", "SIGTERM"):
        # a shell without job control starts background jobs with SIGINT ignored, which the child would inherit
        process = subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, PYTHONFAULTHANDLER="1"),
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 60
        while not any(out_dir.iterdir()) and time.time() < deadline:  # until the temporary output exists
            time.sleep(0.05)
        time.sleep(0.5)
        for attempt in range(2):
            process.send_signal(getattr(signal, case.mode))
            try:
                _, stderr = process.communicate(timeout=30)
                break
            except subprocess.TimeoutExpired:
                # Once in CI a run went on, silent, 60 s after a SIGINT; never reproduced in 300 local tries.
                # A user presses Ctrl-C again: so does the test, and says so in the test summary.
                warnings.warn(f"strcnn deblur was still running 30 s after {case.mode}; sent it again")
        else:  # a hang: SIGABRT makes faulthandler print every thread's stack
            process.send_signal(signal.SIGABRT)
            pytest.fail(f"still running 30 s after a second {case.mode}:\n{process.communicate(timeout=60)[1]}")
        return process.returncode, stderr, sorted(p.name for p in out_dir.iterdir())
    try:
        run = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120,
                             preexec_fn=_unprivileged if case.mode == "unprivileged" else None)
    except subprocess.SubprocessError:  # _unprivileged failed: root without CAP_SETPCAP
        pytest.skip("running as root, and root's override of file permissions cannot be dropped here")
    return run.returncode, run.stderr, sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file under a folder with its hash (permissions lifted for reading, then restored)."""
    prints = {}
    for path in sorted(folder.rglob("*")):
        mode = path.stat().st_mode
        os.chmod(path, mode | 0o700)
        if path.is_file():
            prints[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
        os.chmod(path, mode)
    return prints


def test_a_second_ctrl_c_waits_for_the_pipeline_threads():
    """A Ctrl-C while the pipeline waits for its reader and writer threads is raised only once they have ended, so
    no container is closed under a thread still using it."""
    from strcnn_sdk.pipeline import _join, _Stage

    stage = _Stage(lambda: time.sleep(0.5))
    stage.start()
    main = threading.main_thread().ident
    # Python's own Ctrl-C handler, also where this process was started with SIGINT ignored (a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)).start()  # a real Ctrl-C, to this thread
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            _join(stage)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stage.finished.is_set() and time.perf_counter() - start >= 0.4


def test_an_old_output_folder_comes_back_when_the_new_one_cannot_take_its_place(tmp_path, monkeypatch):
    """--force onto a folder sets the old one aside first; if the new one then fails to move in, the old one is
    put back and nothing else is left."""
    from strcnn_sdk import video

    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "old.png").write_bytes(b"keep me")
    rename = os.replace

    def failing(src, dst):
        if Path(dst) == tmp_path / "frames" and Path(src).name == "frames":  # the new folder moving in
            raise OSError(28, "No space left on device")
        rename(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(video.MediaError, match="writing failed"):
        with video.open_atomic(tmp_path / "frames", video.Source(tmp_path, 8, 6, 1), video.Encoding(), 8) as writer:
            writer.write(np.zeros((6, 8, 3), np.uint8))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["frames", "frames/old.png"]
    assert (tmp_path / "frames" / "old.png").read_bytes() == b"keep me"


FILE_ROWS = doc_table("Files and models through `strcnn deblur`")


def test_every_documented_file_case_is_tested_and_back():
    assert sorted(row[0] for row in FILE_ROWS) == sorted(CASES)


@pytest.mark.parametrize("row", FILE_ROWS, ids=lambda row: row[0])
def test_file_cases(tmp_path, row):
    """Each case as the document says: its exit code and one-line message; no partial output under the final name
    or beside it; the input untouched. A successful case writes its output."""
    name, exit_code, message = row[0], int(row[2]), code(row[3])
    case = CASES[name]
    for folder in ("in", "out"):
        (tmp_path / folder).mkdir()
    case.setup(tmp_path)
    out_dir = tmp_path / Path(case.output).parent
    before, kept = _fingerprint(tmp_path / "in"), _fingerprint(out_dir) if out_dir.is_dir() else {}
    code_, stderr, after = run_case(case, tmp_path)
    assert code_ == exit_code, stderr
    # the shipped model's own warning, while its do-no-harm verdict fails, is a line of its own (test_runtime)
    lines = [line for line in stderr.strip().splitlines() if "fails the do-no-harm rule" not in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in stderr, stderr
    assert _fingerprint(tmp_path / "in") == before  # the input untouched
    names = {Path(relative).parts[0] for relative in kept}  # what the output's folder held at the top
    if exit_code == 0:
        assert lines[0].startswith("wrote") and after == sorted(names | {Path(case.output).name})
        assert len(frames_of(tmp_path / case.output)) == len(frames_of(tmp_path / case.args[0]))
    else:
        assert lines[0].startswith("strcnn: error: ") and after == sorted(names)  # nothing new
        assert (_fingerprint(out_dir) if out_dir.is_dir() else {}) == kept  # nothing lost
