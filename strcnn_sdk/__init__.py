"""strcnn-sdk: online video deblurring (STRCNN+DTB, Kim et al., ICCV 2017) over ONNX Runtime.

    from strcnn_sdk import Deblurrer
    deblurrer = Deblurrer()              # the shipped model; CUDA where usable, else CPU
    deblurrer = Deblurrer("fast")        # the light one: about 3x the frames a second on a CPU
    sharp = deblurrer.push(frame)        # HxWx3 uint8 RGB in, the sharp frame one behind out (None at first)
    rest = deblurrer.flush()             # the frames still owed at the end of the stream

    from strcnn_sdk import deblur_video
    deblur_video("in.mp4", "out.mp4")    # what `strcnn deblur in.mp4 out.mp4` does
    deblur_many(["footage/"], "sharp/")  # what `strcnn deblur-many footage/ --out sharp/` does
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from .deblurrer import Deblurrer, StreamState
from .model import Model, QualityWarning, UntrainedModelWarning
from .settings import Settings

if TYPE_CHECKING:
    from .jobs import Result
    from .many import deblur_many
    from .pipeline import Cancelled, ProgressCallback, deblur_video
    from .video import Frame, MediaError, MediaWarning, OutputClosed, StreamLost, iter_frames

# The video API needs PyAV, imported on first use: frame-by-frame use (and training on a machine without PyAV)
# does without it.
_VIDEO = {"Cancelled": "pipeline", "ProgressCallback": "pipeline", "deblur_video": "pipeline", "Frame": "video",
          "MediaError": "video", "MediaWarning": "video", "OutputClosed": "video", "StreamLost": "video",
          "iter_frames": "video", "Result": "jobs", "deblur_many": "many"}


def __getattr__(name: str):
    if name in _VIDEO:
        return getattr(import_module(f".{_VIDEO[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

try:
    __version__ = version("strcnn-sdk")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Cancelled", "Deblurrer", "Frame", "MediaError", "MediaWarning", "Model", "OutputClosed", "ProgressCallback",
           "QualityWarning", "Result", "Settings", "StreamLost", "StreamState", "UntrainedModelWarning", "__version__",
           "deblur_many", "deblur_video", "iter_frames"]
