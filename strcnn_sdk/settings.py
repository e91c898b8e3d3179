"""`Settings`: how a run reads its input, runs the model and writes its output, in one frozen object that
``strcnn deblur``, `deblur_video` and `deblur_many` share; each layer takes the part it needs (the reader
`reading()`, the output's record `recorded()`, the encoder and the Deblurrer their fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar


@dataclass(frozen=True)
class Settings:
    """The options of a run; every field is also a keyword argument of `deblur_video` and `deblur_many`.

    Reading: `input_format` names the FFmpeg format where it cannot be guessed (raw streams on a pipe);
    `input_options` go to its demuxer (rtsp_transport, video_size ...); `frames` and `duration` (seconds) end the
    input early; `realtime` passes through, untouched, the frames of a live input that arrive while the model is
    busy; a URL that drops is reopened for up to `reconnect` seconds; `fps` is the rate of an image sequence.
    Running: `tile` is the `Deblurrer`'s ("auto": tiles of 512 above 1.5 megapixels; a side; None: never);
    `strength`, from 0 (the input) to 1 (the model's output, the default), how much of the correction to apply.
    Writing: `codec` (None: H.264, VP9 for .webm), `crf`, `preset` and `pix_fmt` set the encoder; `audio` is
    "copy" (where the output holds the codec, else encoded anew), "encode" or "none"; `side_by_side` writes input
    and output side by side, labelled; `format` is the output's container (default: from its name, Matroska on
    standard output); `overwrite` replaces an existing output (never the input).
    """

    input_format: str | None = None
    input_options: dict[str, str] | None = None
    frames: int | None = None
    duration: float | None = None
    realtime: bool = False
    reconnect: float = 30.0
    fps: Fraction | int | float | str = 25
    tile: int | str | None = "auto"
    strength: float = 1.0
    codec: str | None = None
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    audio: str = "copy"
    side_by_side: bool = False
    format: str | None = None
    overwrite: bool = False

    # the fields that shape an output's pictures and streams, recorded in its metadata (`Plan.record`)
    RECORDED: ClassVar[tuple[str, ...]] = ("codec", "crf", "preset", "pix_fmt", "fps", "audio", "side_by_side",
                                           "tile", "strength")

    @classmethod
    def of(cls, settings: Settings | None, options: dict[str, Any]) -> Settings:
        """`settings` (default: the defaults) with `options`, keyword arguments named like its fields, replacing
        those fields; a TypeError names an option that is none."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(f"not a setting of a run: {', '.join(unknown)} (the settings: {', '.join(names)})")
        return dataclasses.replace(settings or cls(), **options)

    def reading(self) -> dict[str, Any]:
        """The keyword arguments of the `Reader` of the input."""
        return dict(input_format=self.input_format, options=self.input_options, frames=self.frames,
                    duration=self.duration, reconnect=self.reconnect)

    def recorded(self) -> dict[str, Any]:
        """The fields that shape the output, as its record stores them."""
        return {name: getattr(self, name) for name in self.RECORDED}
