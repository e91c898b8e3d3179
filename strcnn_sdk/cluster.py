"""A deblur-many job on Ray Data: one row per video (a video's frames stay in order, in one stream), mapped by
actors that each load one `Model` once and run `run_one` on the rows they are given.

Every node reads its inputs and writes its outputs by path, so they must be on storage that every node sees
under the same path (a shared filesystem). Only this module imports Ray (`pip install "strcnn-sdk[ray]"`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import signal
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from .jobs import Result, Tally, Task, run_one, warnings_per_video
from .model import Model, shipped_name
from .video import MediaError


def _worker(tasks: list[Task], model: str | None, providers: str | Sequence, threads: int, precision: str,
            force: bool) -> type:
    """The class of the Ray Data actors: one model, loaded when the actor starts, deblurring one video per row
    (a row is the index of its task). The tasks, with their checked plans, travel inside the class (pickled with
    it), not as rows or constructor arguments in the object store."""

    class Worker:
        def __init__(self) -> None:
            self.model, self.error = None, ""
            try:
                self.model = Model(model, providers=providers, threads=threads, precision=precision)
            except (FileNotFoundError, ValueError, TypeError) as e:  # every row this actor takes reports it
                self.error = f"the model could not be loaded on {os.uname().nodename}: {e}"

        def __call__(self, row: dict) -> dict:
            task = tasks[row["index"]]
            if self.model is None:
                result = Result(task.source, task.output, "failed", self.error)
            else:
                with warnings_per_video():
                    result = run_one(task, self.model, force)
            return {"result": json.dumps(asdict(result))}  # one column: rows of any outcome share one schema

    return Worker


def connect(address: str) -> bool:
    """Join or start Ray: "local" starts an instance on this machine with its cores (or reuses one this process
    started), "auto" joins the cluster this machine belongs to, anything else is a cluster's address."""
    import ray

    if ray.is_initialized():
        return False
    if address not in ("local", "auto"):
        _check_reachable(address)
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    terminate = signal.getsignal(signal.SIGTERM)  # ray.init installs its own, which kills the driver at once
    try:
        if address == "local":
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        hint = "start one with `ray start --head`, or use --ray local" if address == "auto" else \
            "check the address (host:6379, or ray://host:10001 for a client)"
        raise MediaError(f"cannot join the Ray cluster at {address!r} ({str(e).splitlines()[0]}); {hint}") from None
    if callable(terminate):  # the caller's handler (the command line's ends the job like Ctrl-C)
        signal.signal(signal.SIGTERM, terminate)
    return True


def _check_reachable(address: str) -> None:
    """Refuse a cluster address that nothing answers at within 5 s (Ray itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: Ray's own parsing reports it
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise MediaError(f"cannot reach the Ray cluster at {address!r} ({e.strerror or e}); check the address "
                         f"(host:6379, or ray://host:10001 for a client) and that the cluster runs") from None


def run_on_ray(tasks: list[Task], address: str, tally: Tally, *, model: Model | str | os.PathLike | None,
               providers: str | Sequence, threads: int | None, precision: str, force: bool, workers: int | None,
               gpus_per_worker: float) -> list[Result]:
    """Run a job's videos on Ray Data and return their results in the tasks' order.

    Each worker is an actor holding `threads` CPUs (default 1) and `gpus_per_worker` GPUs, with a model of that
    many threads; `workers` (default: as many as the cluster's CPUs, or GPUs, hold, at most one per video) run
    side by side. A video whose worker dies is retried by Ray; one that still never comes back is "failed".
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise MediaError('Ray is not installed; pip install "strcnn-sdk[ray]"') from None
    if isinstance(model, Model):
        model = model.path  # each worker opens its own session; the file must be where every node sees it
    if shipped_name(model) is None:  # a file, not a shipped model's name
        model = os.path.abspath(model)
        if not os.path.isfile(model):
            raise MediaError(f"model file {model} not found")
    started = connect(address)
    cpus, have = threads or 1, ray.cluster_resources()
    for name, each, option in (("CPU", cpus, "--threads"), ("GPU", gpus_per_worker, "--gpus-per-worker")):
        if each > have.get(name, 0):  # else Ray would wait for them for ever
            raise MediaError(f"each worker asks for {each:g} {name}s ({option}), but the Ray cluster has "
                             f"{have.get(name, 0):g}")
    if workers is None:
        workers = int(have["GPU"] / gpus_per_worker) if gpus_per_worker > 0 else int(have["CPU"] // cpus)
    workers = max(1, min(workers, len(tasks)))
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes on progress bars and start-up
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job's own progress display counts the videos
    context.max_errored_blocks = len(tasks)  # a block lost with its worker is reported below, not raised
    rows = ray.data.from_items([{"index": i} for i in range(len(tasks))], override_num_blocks=len(tasks))
    # one video at a time per worker: a long video queued behind another would leave a free worker idle
    pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
    mapped = rows.map(_worker(tasks, model, providers, cpus, precision, force), compute=pool, num_cpus=cpus,
                      num_gpus=gpus_per_worker or None)
    results: dict[Task, Result] = {}
    try:
        for row in mapped.iter_rows():
            fields = json.loads(row["result"])
            result = Result(**{**fields, "warnings": tuple(fields["warnings"])})
            results[Task(result.source, result.output)] = result
            if not tally.end(result):
                break
    except KeyboardInterrupt:
        tally.stopped = True
    if tally.stopped and started:
        ray.shutdown()  # ends the workers still writing, so that what they leave can be removed
        for task in tasks:
            if task not in results:
                _remove_unfinished(task.output)
    lost = ("cancelled", "the job was stopped first") if tally.stopped else ("failed", "its Ray worker never "
                                                                              "returned it (the worker died)")
    return [results.get(task) or Result(task.source, task.output, *lost) for task in tasks]


def _remove_unfinished(output: str) -> None:
    """Remove the hidden temporary folders that stopped workers left beside an output (`open_atomic`'s)."""
    path = Path(output)
    for partial in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
