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


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """A gathered-photographs folder in miniature: three training pictures, one validation and one natural (of
    the second collection; smooth colour fields with edges and fine stripes), written and described as
    `python -m export.photos` does."""
    cv2 = pytest.importorskip("cv2")
    from export.photos import write_manifest, write_photo

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    entries = []
    for i, (split, collection) in enumerate([("train", 1), ("train", 1), ("train", 1), ("validation", 1),
                                             ("natural", 2)]):
        image = cv2.resize(rng.integers(0, 256, (6, 9, 3), np.uint8), (450, 300), interpolation=cv2.INTER_CUBIC)
        image[100:140, :, i % 3] = np.where(np.arange(450) % 4 < 2, 255, 0)[None]
        entries.append(write_photo(folder, f"p{i}", image, {"origin": "tests", "license": "CC0-1.0", "split": split,
                                                            "collection": collection}))
    write_manifest(folder, entries)
    return folder

