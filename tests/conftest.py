"""Shared fixtures: a tiny random-weight model, exported once per session through the real exporter."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from strcnn_sdk import Model, UntrainedModelWarning


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, "object"]:
    """(path of a width-8 dtb model's .onnx, the PyTorch model it was exported from)."""
    torch = pytest.importorskip("torch")
    from export.model import STRCNN
    from export.onnx import export

    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export(model, path, trained=False)
    return path, model


@pytest.fixture(scope="session")
def tiny_model(tiny) -> Model:
    """The tiny model as a CPU `Model` (one thread), shared: a Model holds no stream state."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        return Model(tiny[0], providers="cpu", threads=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
