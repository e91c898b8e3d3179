"""`strcnn deblur-many` and `deblur_many`: finding the videos, naming the outputs, skipping finished work, damaged
inputs, and the same job on this machine and on a Ray instance started here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from strcnn_sdk.cli import app
from strcnn_sdk.many import Task, deblur_many, plan
from strcnn_sdk.video import MediaError, read_record

from media import frames_of, make_video

runner = CliRunner()
# Lossless H.264 wherever frames are compared bit for bit: the model's output is reproducible, but libx264 can
# encode the same frames to different bits from run to run in one process (it reads memory it never wrote), and a
# lossy encode turns that into different decoded frames.
LOSSLESS = ["--crf", "0"]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def outputs(tasks: list[Task], out: Path) -> list[str]:
    return [str(Path(task.output).relative_to(out)) for task in tasks]


def test_folders_keep_their_tree_and_files_given_directly_land_at_the_top(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for name in ["a/b/clip2.mp4", "a/b/clip10.mov", "top.mkv", "a/notes.txt", "a/still.png", ".hidden/x.mp4",
                 "a/.partial.mp4", "odd.ts"]:
        touch(lib / name)
    single = touch(tmp_path / "elsewhere" / "single.avi")
    tasks = plan([lib, single], out)
    assert outputs(tasks, out) == ["a/b/clip2.mp4", "a/b/clip10.mov", "odd.mkv", "top.mkv", "single.avi"]
    assert tasks[0].source == str(lib / "a/b/clip2.mp4")
    renamed = plan([lib / "a"], out, suffix="_sharp", ext="webm")
    assert outputs(renamed, out) == ["b/clip2_sharp.webm", "b/clip10_sharp.webm"]


def test_globs_keep_the_paths_below_their_first_wildcard_and_manifests_name_files(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for name in ["day1/cam/a.mp4", "day2/cam/b.mp4", "day2/cam/c.jpg"]:
        touch(lib / name)
    assert outputs(plan([f"{lib}/**/*"], out), out) == ["day1/cam/a.mp4", "day2/cam/b.mp4"]
    manifest = lib / "list.txt"
    manifest.write_text("# today\nday1/cam/a.mp4\n\n  day2/cam/b.mp4  \n")
    assert [task.source for task in plan([manifest], out)] == [str(lib / "day1/cam/a.mp4"),
                                                               str(lib / "day2/cam/b.mp4")]
    assert outputs(plan([manifest], out), out) == ["a.mp4", "b.mp4"]


@pytest.mark.parametrize("case, message", [
    ("same name", "would both be written to"),
    ("out inside input", "inside the input folder"),
    ("given twice", "is given twice"),
    ("missing", "no such file or folder"),
    ("over the input", "would overwrite the input"),
    ("empty folder", "no videos"),
    ("glob without videos", "matches no videos"),
    ("image ext", "--ext must be a video container"),
    ("gif ext", "a GIF holds no record"),
    ("container without the codec", "webm cannot hold libx264 video"),
    ("out is a file", "the output folder is a file"),
    ("image", "an image in a list of videos"),
    ("folder in a manifest", "a folder in a list of videos"),
    ("workers without ray", "add --ray"),
    ("jobs on ray", "--jobs is for this machine"),
])
def test_bad_jobs_are_refused_before_anything_runs(tmp_path, case, message):
    a, b = touch(tmp_path / "x/clip.mp4"), touch(tmp_path / "y/clip.mp4")
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("x/clip.mp4\nempty\n")
    options = {"workers without ray": ["--workers", "2"], "jobs on ray": ["--jobs", "2", "--ray", "local"],
               "container without the codec": ["--codec", "libx264"]}.get(case)
    inputs, out, ext = {
        "same name": ([a, b], tmp_path / "out", None),
        "out inside input": ([tmp_path / "x"], tmp_path / "x/out", None),
        "given twice": ([tmp_path / "x", a], tmp_path / "out", None),
        "missing": ([tmp_path / "nope.mp4"], tmp_path / "out", None),
        "over the input": ([a], tmp_path / "x", None),
        "empty folder": ([tmp_path / "empty"], tmp_path / "out", None),
        "glob without videos": ([f"{tmp_path}/empty/*.mp4"], tmp_path / "out", None),
        "image ext": ([a], tmp_path / "out", "png"),
        "gif ext": ([a], tmp_path / "out", "gif"),
        "container without the codec": ([a], tmp_path / "out", "webm"),
        "image": ([touch(tmp_path / "photo.jpg")], tmp_path / "out", None),
        "out is a file": ([a], touch(tmp_path / "out.mp4"), None),
        "folder in a manifest": ([tmp_path / "list.txt"], tmp_path / "out", None),
    }.get(case, ([a], tmp_path / "out", None))
    if options is None:
        with pytest.raises(MediaError, match=message):
            plan(inputs, out, ext=ext)
    result = runner.invoke(app, ["deblur-many", *map(str, inputs), "--out", str(out),
                                 *(["--ext", ext] if ext else []), *(options or [])])
    assert result.exit_code == 1 and result.stderr.startswith("strcnn: error:") and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_search_passes_over_dependency_folders_and_files_that_are_not_videos(tmp_path, tiny):
    """A folder holding a JavaScript project (node_modules with TypeScript's .mts and .d.mts, which would map to
    one output, and a .ts source beside the videos) is searched as a person means it: node_modules is not entered,
    and a text file with a video's extension is skipped with a one-line note; named directly, it fails."""
    lib, out, report = tmp_path / "lib", tmp_path / "out", tmp_path / "report.json"
    make_video(touch(lib / "clips" / "a.mp4"), frames=3, size=(32, 48))
    for name in ["web/node_modules/escalade/index.d.mts", "web/node_modules/escalade/index.d.ts",
                 "web/node_modules/pkg/movie.mp4", "__pycache__/x.mp4"]:
        touch(lib / name).write_text("export declare function up(): string;\n")
    (lib / "web" / "main.ts").write_text("import { up } from 'escalade';\nconsole.log(up());\n")
    assert outputs(plan([lib], out), out) == ["clips/a.mp4", "web/main.mkv"]
    assert outputs(plan([f"{lib}/**/*.*"], out), out) == ["clips/a.mp4", "web/main.mkv"]
    result = many(str(lib), "--out", str(out), "--model", str(tiny[0]), "--report", str(report))
    assert result.exit_code == 0, result.output
    rows = {Path(row["source"]).name: row for row in json.loads(report.read_text())["videos"]}
    assert rows["a.mp4"]["status"] == "done" and rows["main.ts"]["status"] == "skipped"
    assert rows["main.ts"]["note"] == f"not a video, passed over: {lib / 'web' / 'main.ts'}: a text file (source " \
                                      "code or notes), not a video"
    assert "1 done, 1 skipped" in result.stdout and not (out / "web").exists()
    named = many(str(lib / "web" / "main.ts"), "--out", str(out), "--model", str(tiny[0]))
    assert named.exit_code == 1 and "1 failed" in named.stdout


def test_a_damaged_video_fails_the_job_while_source_code_is_passed_over(tmp_path, tiny):
    """Text under a video's extension is a damaged video (the job fails, naming it), except under the extensions
    that source code shares with video (TypeScript's .ts, .mts): those a search passes over."""
    lib, out, report = tmp_path / "lib", tmp_path / "out", tmp_path / "report.json"
    make_video(touch(lib / "a.mp4"), frames=3, size=(32, 48))
    touch(lib / "bad.mp4").write_text("not a video")
    touch(lib / "src" / "main.ts").write_text("console.log('hello');\n")
    touch(lib / "node_modules" / "pkg" / "movie.mp4").write_text("not a video either")
    result = many(str(lib), "--out", str(out), "--model", str(tiny[0]), "--report", str(report))
    assert result.exit_code == 1, result.output
    rows = {Path(row["source"]).name: row for row in json.loads(report.read_text())["videos"]}
    assert sorted(rows) == ["a.mp4", "bad.mp4", "main.ts"]
    assert [rows[name]["status"] for name in ("a.mp4", "bad.mp4", "main.ts")] == ["done", "failed", "skipped"]
    assert rows["bad.mp4"]["note"].startswith(f"{lib / 'bad.mp4'}: not a readable video")
    assert "it holds text" in rows["bad.mp4"]["note"] and "1 done, 1 skipped, 1 failed" in result.stdout


def test_each_check_runs_once_per_video(tmp_path, tiny, monkeypatch):
    """The command line hands what it checked to what runs it: `check_run` and the encoder check once per video
    (also when a job skips a finished video), `check_job` once per job."""
    import strcnn_sdk.many as many_module
    import strcnn_sdk.pipeline as pipeline

    calls = {"check_run": 0, "check_encoding": 0, "check_job": 0}

    def counted(module, name: str) -> None:
        real = getattr(module, name)

        def count(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, count)

    for module, name in ((pipeline, "check_run"), (many_module, "check_run"), (pipeline, "check_encoding"),
                         (many_module, "check_job")):
        counted(module, name)
    lib = tmp_path / "lib"
    for i in range(3):
        make_video(touch(lib / f"clip{i}.mp4"), frames=2, size=(16, 16))
    single = runner.invoke(app, ["deblur", str(lib / "clip0.mp4"), str(tmp_path / "one.mp4"), "--model", str(tiny[0])])
    assert single.exit_code == 0 and calls == {"check_run": 1, "check_encoding": 1, "check_job": 0}, calls
    for rerun in range(2):  # the second run skips every video: their records are compared, nothing checked again
        result = many(str(lib), "--out", str(tmp_path / "out"), "--model", str(tiny[0]))
        assert result.exit_code == 0 and (rerun == 0 or "3 skipped" in result.stdout), result.output
    assert calls == {"check_run": 7, "check_encoding": 7, "check_job": 2}, calls


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Four short clips (one in a subfolder, one with audio) and one damaged file."""
    lib = tmp_path_factory.mktemp("library")
    for i, name in enumerate(["a.mp4", "b.mp4", "sub/c.mkv", "sub/d.mov"]):
        (lib / name).parent.mkdir(exist_ok=True)
        make_video(lib / name, frames=4 + i, size=(32, 48), seed=i, audio=name == "b.mp4")
    (lib / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    return lib


@pytest.fixture(scope="module")
def singles(library, tiny, tmp_path_factory) -> dict[str, np.ndarray]:
    """Each clip through `strcnn deblur` on its own: the frames every job must reproduce, bit for bit."""
    out = tmp_path_factory.mktemp("singles")
    frames = {}
    for name in ["a.mp4", "b.mp4", "sub/c.mkv", "sub/d.mov"]:
        target = out / name.replace("/", "_")
        result = runner.invoke(app, ["deblur", str(library / name), str(target), "--model", str(tiny[0]), "-q",
                                     *LOSSLESS])
        assert result.exit_code == 0, result.output
        frames[name] = frames_of(target)
    return frames


def many(*args: str) -> "object":
    """`strcnn deblur-many` with the arguments, lossless unless they set --crf."""
    return runner.invoke(app, ["deblur-many", *args, *([] if "--crf" in args else LOSSLESS)])


def check_job(out: Path, singles: dict[str, np.ndarray], report: Path) -> None:
    for name, expected in singles.items():
        np.testing.assert_array_equal(frames_of(out / name), expected)
    rows = {Path(row["source"]).name: row for row in json.loads(report.read_text())["videos"]}
    assert {name: row["status"] for name, row in rows.items()} == {
        "a.mp4": "done", "b.mp4": "done", "c.mkv": "done", "d.mov": "done", "broken.mp4": "failed"}
    assert "not a readable video" in rows["broken.mp4"]["note"] and not (out / "broken.mp4").exists()
    assert [rows[n]["frames"] for n in ["a.mp4", "b.mp4", "c.mkv", "d.mov"]] == [4, 5, 6, 7]


def test_a_job_matches_strcnn_deblur_and_a_second_run_skips_what_is_done(tmp_path, library, singles, tiny):
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = many(str(library), "--out", str(out), "--model", str(tiny[0]), "--report", str(report))
    assert result.exit_code == 1  # one input failed
    check_job(out, singles, report)
    assert "broken.mp4" in result.stdout and "4 done, 1 failed" in result.stdout
    assert read_record(out / "a.mp4")["model_sha256"] == json.loads((tiny[0].with_suffix(".json")).read_text()
                                                                    )["onnx_sha256"]
    stamp = (out / "a.mp4").stat().st_mtime_ns
    again = many(str(library), "--out", str(out), "--model", str(tiny[0]), "--report", str(report))
    statuses = [row["status"] for row in json.loads(report.read_text())["videos"]]
    assert again.exit_code == 1 and statuses.count("skipped") == 4 and statuses.count("failed") == 1
    assert (out / "a.mp4").stat().st_mtime_ns == stamp
    # other options: made anew, saying why; a file this package did not write is not replaced without --force
    (out / "d.mov").write_bytes(b"mine")  # where sub/d.mov goes when given directly
    changed = many(str(library / "a.mp4"), str(library / "sub/d.mov"), "--out", str(out), "--model",
                   str(tiny[0]), "--crf", "30", "--report", str(report))
    rows = json.loads(report.read_text())["videos"]
    assert changed.exit_code == 1
    assert (rows[0]["status"], rows[0]["note"]) == ("done", "replaced an output made with another crf")
    assert rows[1]["status"] == "failed" and "not written by strcnn-sdk" in rows[1]["note"]
    assert (out / "d.mov").read_bytes() == b"mine"
    forced = many(str(library / "sub/d.mov"), "--out", str(out), "--model", str(tiny[0]), "--force", "-q")
    assert forced.exit_code == 0 and read_record(out / "d.mov") is not None


def test_jobs_side_by_side_give_the_same_frames(tmp_path, library, singles, tiny):
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = many(str(library), "--out", str(out), "--model", str(tiny[0]), "--jobs", "2", "--report", str(report))
    assert result.exit_code == 1
    check_job(out, singles, report)


def test_a_stopped_job_writes_nothing_more_and_resumes(tmp_path, library, tiny_model):
    seen = []

    def progress(job) -> bool:
        seen.append(job)
        return job.frames_done < 6  # stop during the second video

    out = tmp_path / "out"
    results = deblur_many([library / "a.mp4", library / "b.mp4", library / "sub/c.mkv"], out, model=tiny_model,
                          progress=progress)
    assert [r.status for r in results] == ["done", "cancelled", "cancelled"]
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"]  # no partial file, under any name
    assert seen[0].videos == 3 and seen[0].frames == 15 and seen[-1].videos_done == 1
    resumed = deblur_many([library / "a.mp4", library / "b.mp4", library / "sub/c.mkv"], out, model=tiny_model)
    assert [r.status for r in resumed] == ["skipped", "done", "done"]


def test_a_job_without_ray_imports_nothing_of_ray(tmp_path, library, tiny):
    code = ("import sys, warnings; warnings.simplefilter('ignore'); from strcnn_sdk.many import deblur_many; "
            f"r = deblur_many([{str(library / 'a.mp4')!r}], {str(tmp_path / 'out')!r}, model={str(tiny[0])!r}); "
            "assert r[0].status == 'done', r; assert not any(m.split('.')[0] == 'ray' for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_ray_address_that_nothing_answers_is_a_one_line_error(tmp_path, library):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'strcnn-sdk[ray]')")
    if ray.is_initialized():
        pytest.skip("a Ray instance already runs in this process: its connection would be reused")
    result = many(str(library / "a.mp4"), "--out", str(tmp_path / "out"), "--ray", "127.0.0.1:1")
    assert result.exit_code == 1 and "cannot reach the Ray cluster at '127.0.0.1:1'" in result.stderr
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def ray_instance():
    """One Ray instance on this machine for every Ray test, as `--ray local` would start it."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'strcnn-sdk[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'strcnn-sdk[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_the_same_job_on_ray_gives_the_same_frames(tmp_path, library, singles, tiny, ray_instance):
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = many(str(library), "--out", str(out), "--model", str(tiny[0]), "--ray", "local", "--report",
                  str(report))
    assert result.exit_code == 1, result.output
    check_job(out, singles, report)
    again = many(str(library), "--out", str(out), "--model", str(tiny[0]), "--ray", "local", "--report",
                 str(report))
    statuses = [row["status"] for row in json.loads(report.read_text())["videos"]]
    assert again.exit_code == 1 and statuses.count("skipped") == 4 and statuses.count("failed") == 1


def test_a_model_that_fails_on_the_workers_comes_back_as_failed_rows(tmp_path, library, tiny, ray_instance):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    bad.with_suffix(".json").write_text(tiny[0].with_suffix(".json").read_text())
    results = deblur_many([library / "a.mp4", library / "b.mp4"], tmp_path / "out", model=bad, ray="local",
                          workers=1)
    assert [r.status for r in results] == ["failed", "failed"]
    assert "could not be loaded" in results[0].note and "onnx_sha256 does not match" in results[0].note


def test_the_frame_total_is_exact_or_marked_as_an_estimate(tmp_path, library, tiny_model, capsys):
    """MP4 stores its frame count, Matroska does not: a job with a Matroska input reports its total as an
    estimate (~N in the CLI) until that video has ended, and exact from then on."""
    seen = []
    deblur_many([library / "a.mp4", library / "sub/c.mkv"], tmp_path / "out", model=tiny_model,
                progress=lambda job: seen.append(job))
    assert not seen[0].frames_exact and seen[-1].frames_exact and seen[-1].frames == seen[-1].frames_done
    seen.clear()
    deblur_many([library / "a.mp4"], tmp_path / "out2", model=tiny_model, progress=lambda job: seen.append(job))
    assert all(job.frames_exact for job in seen)
    from strcnn_sdk.console import ProgressBar

    bar = ProgressBar(quiet=False)  # not a terminal here: progress lines, one per call with no interval
    bar.EVERY_S = 0.0
    bar(3, 10, "1/2 videos", estimate=True)
    bar(4, 10, "1/2 videos")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("deblurring: 3/~10 frames") and ", ETA ~" in lines[0]
    assert lines[1].startswith("deblurring: 4/10 frames") and "~" not in lines[1]


def test_the_job_modules_import_one_way():
    """cluster.py holds only what Ray needs: it builds on jobs.py, not on many.py, which calls it."""
    code = "import sys, strcnn_sdk.cluster; print('strcnn_sdk.many' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False"]
