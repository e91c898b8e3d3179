"""Deblur a library of videos in one job: videos found in folders, quoted globs and manifests, each written under
one output folder; one after another (or a few side by side) on this machine, or on a Ray cluster (`cluster.py`).

A job can be stopped and run again. Outputs are written atomically, so an output that exists is complete; it is
skipped when the record in its metadata (`Plan.record`) says it was made by the same model with the same
settings, and made anew otherwise. One damaged input fails alone: every video ends as a `Result`.
"""

from __future__ import annotations

import glob
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from .jobs import JobProgressCallback, Result, Tally, Task, run_one, warnings_per_video
from .model import Model
from .pipeline import check_run
from .settings import Settings
from .video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, MediaError, natural

MANIFEST_SUFFIXES = (".txt", ".lst", ".list")
# output containers kept from the input's name; any other input (.ts, .flv, .y4m, raw .h264 ...) becomes Matroska
KEPT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
# folders of installed dependencies and caches, never searched for videos: a JavaScript project's node_modules holds
# TypeScript's .mts files, which share the extension of AVCHD video
PASSED_OVER = frozenset({"node_modules", "bower_components", "site-packages", "__pycache__"})


def plan(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *, suffix: str = "",
         ext: str | None = None) -> list[Task]:
    """The videos of `inputs` and where each one's output goes, checked before anything runs.

    An input is a video file (its output is ``out/NAME``), a folder searched recursively for videos (one found at
    ``IN/a/b/NAME`` goes to ``out/a/b/NAME``; hidden files and folders, and dependency folders such as
    node_modules, are passed over), a quoted glob (paths kept below the glob's first wildcard), or a manifest
    (.txt, .lst or .list: one path a line, relative to the manifest's folder, blank lines and # comments ignored;
    each as a file given directly). Each output is named after its input, with `suffix` added to the stem and the
    extension `ext` (default: the input's for MP4, MOV, Matroska, WebM and AVI, else .mkv). Raises `MediaError`
    for a missing input, a folder or glob without videos, an input given twice, two inputs mapping to one output,
    or an output folder inside an input folder.
    """
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() in IMAGE_SUFFIXES or ext == ".":
            raise MediaError(f"--ext must be a video container such as .mp4 or .mkv, got {ext!r}")
        if ext.lower() == ".gif":  # the record is how a job that runs again tells finished work from work to redo
            raise MediaError("--ext .gif: a GIF holds no record of the model and options that made it, so a job run "
                             "again could not skip it; make GIFs one at a time with strcnn deblur")
    out = Path(out)
    found: list[tuple[Path, Path, bool]] = []  # (video, its path below the output folder, found by a search)
    roots: list[Path] = []
    for spec in map(os.fspath, inputs):
        path = Path(spec)
        if path.is_dir():
            roots.append(path)
            videos = _videos_below(path)
            if not videos:
                raise MediaError(f"{spec}: no videos ({', '.join(VIDEO_SUFFIXES[:6])} ...) found in this folder")
            found += [(video, video.relative_to(path), True) for video in videos]
        elif glob.has_magic(spec):
            root = _glob_root(spec)
            roots.append(root)
            videos = sorted((Path(p) for p in glob.glob(spec, recursive=True) if _is_video(Path(p), root)), key=natural)
            if not videos:
                raise MediaError(f"{spec}: the pattern matches no videos")
            found += [(video, video.relative_to(root), True) for video in videos]
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            found += [(video, Path(video.name), False) for video in _manifest(path)]
        elif path.is_file():
            found.append((path, Path(path.name), False))
        else:
            raise MediaError(f"{spec}: no such file or folder")
    for video, _, _ in found:
        if video.suffix.lower() in IMAGE_SUFFIXES or video.is_dir():
            raise MediaError(f"{video}: {'a folder' if video.is_dir() else 'an image'} in a list of videos; "
                             f"deblur-many takes videos (a folder given on the command line is searched for them; "
                             f"`strcnn deblur` makes one video of an image sequence)")
    if out.exists() and not out.is_dir():
        raise MediaError(f"{out}: the output folder is a file; choose a folder (made if missing)")
    destination = out.resolve()
    for root in roots:
        if destination == root.resolve() or root.resolve() in destination.parents:
            raise MediaError(f"{out}: the output folder is inside the input folder {root} (a second run would take "
                             f"the outputs for inputs); choose an output folder outside it")
    tasks, sources, outputs = [], {}, {}
    for video, below, searched in found:
        name = below.stem + suffix + (ext or (below.suffix if below.suffix.lower() in KEPT_SUFFIXES else ".mkv"))
        output = out / below.with_name(name)
        source_key, output_key = os.path.normcase(os.path.abspath(video)), os.path.normcase(os.path.abspath(output))
        if source_key in sources:
            raise MediaError(f"{video} is given twice (also as {sources[source_key]}); give it once")
        if output_key in outputs:
            raise MediaError(f"{outputs[output_key]} and {video} would both be written to {output}; give their "
                             f"folder instead of the files (paths below it are kept), or rename one")
        if output_key == source_key:
            raise MediaError(f"{output}: the output would overwrite the input; choose another --out, --suffix or "
                             f"--ext")
        sources[source_key], outputs[output_key] = video, video
        tasks.append(Task(str(video), str(output), searched))
    if not tasks:
        raise MediaError("no videos to deblur: the inputs name none")
    return tasks


def _passed_over(name: str) -> bool:
    """A file or folder name that a search for videos passes over: hidden (unfinished outputs are) or a
    dependency folder."""
    return name.startswith(".") or name in PASSED_OVER


def _is_video(path: Path, root: Path) -> bool:
    """A file with a video's extension and no part below `root` that a search passes over."""
    return (path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()
            and not any(_passed_over(part) for part in path.relative_to(root).parts))


def _videos_below(root: Path) -> list[Path]:
    """The videos in a folder and below it, in natural order; folders passed over are not even entered."""
    videos = []
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not _passed_over(name)]
        videos += [video for name in files if _is_video(video := Path(folder) / name, root)]
    return sorted(videos, key=natural)


def _glob_root(pattern: str) -> Path:
    """The folder above a glob's first wildcard: `clips/**/*.mp4` keeps the paths below `clips`."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _manifest(path: Path) -> list[Path]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MediaError(f"{path}: the manifest cannot be read as text ({e})") from None
    entries = [line.strip() for line in lines]
    videos = [path.parent / entry for entry in entries if entry and not entry.startswith("#")]
    if not videos:
        raise MediaError(f"{path}: the manifest lists no videos (one path a line)")
    return videos


@dataclass
class Job:
    """A deblur-many job as checked before a model loads (`check_job`): its videos, each with its checked `Plan`,
    and where they run. `run` runs it, checking nothing again."""

    tasks: list[Task]
    jobs: int = 1
    ray: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def run(self, model: Model | str | os.PathLike | None = None, providers: str | Sequence = "auto",
            threads: int | None = None, precision: str = "auto", force: bool = False,
            progress: JobProgressCallback | None = None) -> list[Result]:
        """Deblur the job's videos (see `deblur_many`); one `Result` per video, in the tasks' order."""
        tally = Tally(self.tasks, progress)
        if self.ray is not None:
            from .cluster import run_on_ray

            return run_on_ray(self.tasks, self.ray, tally, model=model, providers=providers, threads=threads,
                              precision=precision, force=force, workers=self.workers,
                              gpus_per_worker=self.gpus_per_worker)
        if not isinstance(model, Model):
            model = Model(model, providers=providers, threads=threads, precision=precision)
        return _run_here(self.tasks, model, force, self.jobs, tally)


def check_job(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *, suffix: str = "",
              ext: str | None = None, jobs: int = 1, ray: str | None = None, workers: int | None = None,
              gpus_per_worker: float = 0.0, settings: Settings = Settings()) -> Job:
    """The checks of a job that cost nothing, made before a model loads: its options, its inputs and outputs
    (`plan`), and each video's run with `settings` (`check_run`: an output that exists is judged by its record
    when the job runs). Returns the `Job`; raises `MediaError` naming what is wrong."""
    if jobs < 1:
        raise MediaError(f"jobs must be 1 or more, got {jobs}")
    if ray is None and (workers is not None or gpus_per_worker):
        raise MediaError("--workers and --gpus-per-worker size Ray workers: add --ray local, auto or an address")
    if ray is not None and jobs != 1:
        raise MediaError("--jobs is for this machine; on Ray, --workers sets how many videos run side by side")
    replacing = replace(settings, overwrite=True)
    tasks = [replace(task, plan=check_run(task.source, task.output, replacing))
             for task in plan(inputs, out, suffix=suffix, ext=ext)]
    return Job(tasks, jobs, ray, workers, gpus_per_worker)


def deblur_many(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                model: Model | str | os.PathLike | None = None, providers: str | Sequence = "auto",
                threads: int | None = None, precision: str = "auto", suffix: str = "", ext: str | None = None,
                force: bool = False, jobs: int = 1, ray: str | None = None, workers: int | None = None,
                gpus_per_worker: float = 0.0, progress: JobProgressCallback | None = None,
                settings: Settings | None = None, **options) -> list[Result]:
    """Deblur every video of `inputs` into the folder `out`, as ``strcnn deblur-many`` does; one `Result` per
    video, in the order found. See `plan` for the inputs and the output names.

    `settings` (a `Settings`, with keyword `options` named like its fields replacing them: codec=, crf=,
    pix_fmt=, side_by_side=, tile= ...) are the same for every video. An output that exists is skipped when it
    was made with the same model and settings, made anew when not, and refused (a failed row) when this package
    did not write it; `force` makes all anew.

    On this machine (`ray` None) videos run one after another, or `jobs` at a time sharing one `Model`
    (`model`, `providers`, `threads`, `precision` as for `Model`). With `ray` ("local": a Ray instance on this
    machine; "auto": the cluster this machine belongs to; or a cluster's address) every worker loads its own
    model; see `cluster.run_on_ray` for `workers` and `gpus_per_worker`.

    `progress(JobProgress)` returning False, or Ctrl-C, stops the job: videos under way are abandoned (nothing
    written) and they and those not started come back "cancelled". Raises `MediaError` for unusable inputs or
    options, before any video runs (`check_job`, whose `Job` runs without checking again).
    """
    job = check_job(inputs, out, suffix=suffix, ext=ext, jobs=jobs, ray=ray, workers=workers,
                    gpus_per_worker=gpus_per_worker, settings=Settings.of(settings, options))
    return job.run(model, providers, threads, precision, force, progress)


def _run_here(tasks: list[Task], model: Model, force: bool, jobs: int, tally: Tally) -> list[Result]:
    """The videos on this machine, `jobs` at a time in threads sharing `model`; Ctrl-C cancels what is left."""
    results: dict[Task, Result] = {}

    def work(task: Task) -> Result:
        if tally.stopped:
            return Result(task.source, task.output, "cancelled", "the job was stopped before this video began")
        return run_one(task, model, force, lambda done, total: tally.frame(task, done))

    with warnings_per_video(), ThreadPoolExecutor(jobs) as pool:
        running = {pool.submit(work, task): task for task in tasks}
        try:
            while running:
                ended, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in ended:
                    result = results[running.pop(future)] = future.result()
                    tally.end(result)
        except KeyboardInterrupt:
            tally.stopped = True  # the videos under way cancel at their next frame; the others do not start
            for future, task in running.items():
                results[task] = future.result()
    return [results[task] for task in tasks]
