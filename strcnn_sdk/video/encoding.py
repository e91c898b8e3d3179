"""How a video output is encoded (`Encoding`): the encoder for a container, the checks of encoder, pixel format,
quality scale and container made before any frame is decoded, and each encoder's options."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .errors import MediaError, close_quietly

# x264's preset names as SVT-AV1's numeric presets (numbers pass through)
_SVT_PRESETS = {"placebo": 0, "veryslow": 2, "slower": 4, "slow": 5, "medium": 7, "fast": 8, "faster": 9,
                "veryfast": 10, "superfast": 11, "ultrafast": 12}


@dataclass
class Encoding:
    """How to encode a video output."""

    codec: str | None = None  # None: libx264; libvpx-vp9 for .webm, gif for .gif (`codec_for`)
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    fps: Fraction = Fraction(25)  # for image inputs, which carry no timing
    audio: str = "copy"  # one of AUDIO_MODES
    format: str | None = None  # the container: None for what the file's name says (Matroska on standard output)
    live: bool = False  # low latency: x264/x265 tuned for zero latency (no B-frames, no lookahead), VP9 without lag
    record: dict | None = None  # what made the output (model, settings), kept in its metadata: see `read_record`


# the encoder an output gets where none is asked for, by container: WebM cannot hold H.264, GIF holds only GIF
_DEFAULT_CODECS = {"webm": "libvpx-vp9", "gif": "gif"}
# the encoders an error names first when a container cannot hold the one asked for
_KNOWN = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4", "gif")
PIPE_FORMAT = "matroska"  # what standard output gets unless told: it streams and holds any codec
GIF = "gif"  # the GIF encoder: 256 colours a frame, from a palette made for each frame (pal8)


def codec_for(path: str | os.PathLike, encoding: Encoding) -> str:
    """The encoder for an output: the one asked for, else what its container holds and browsers play."""
    container = encoding.format or Path(path).suffix.lower().lstrip(".")
    return encoding.codec or _DEFAULT_CODECS.get(container, "libx264")


# the quality scale (--crf) of the encoders that take one: lower is better
CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libsvtav1": (1, 63)}


def check_encoding(output: str | os.PathLike, encoding: Encoding) -> str:
    """The encoder of a video output (a file's name, or "-" for standard output), checked before any frame is
    decoded: one this PyAV build has, a pixel format it takes, a --crf on its scale, and a container (named by
    `encoding.format`, else by the file's name) that can hold it. Returns the encoder's name; raises
    `MediaError` naming what would work."""
    codec = codec_for(output, encoding)
    _check_encoder(codec, encoding)
    piped = os.fspath(output) == "-"
    probe = io.BytesIO()  # FFmpeg guesses a container from a name: the probe's is the output's, nothing is written
    probe.name = "pipe" if piped else Path(output).name
    try:
        container = av.open(probe, "w", format=encoding.format or (PIPE_FORMAT if piped else None))
    except (av.FFmpegError, ValueError) as e:  # ValueError: a name or --format FFmpeg does not know
        what = "standard output: cannot write this kind of stream" if piped else \
            f"{output}: cannot write this kind of file"
        raise MediaError(f"{what} ({getattr(e, 'strerror', None) or e}); choose another "
                         f"{'--format' if piped else 'name or --format'}") from None
    try:
        container.add_stream(codec)
    except ValueError:
        holds = sorted(container.supported_codecs & av.codecs_available)
        takes = [name for name in _KNOWN if name in holds] or [name for name in holds if _is_video_encoder(name)][:8]
        raise MediaError(f"{output}: {container.format.name} cannot hold {codec} video; it takes "
                         f"{', '.join(takes) or 'no video encoder of this PyAV build'}: choose one with --codec, or "
                         f"another container") from None
    finally:
        close_quietly(container)
    return codec


def _is_video_encoder(name: str) -> bool:
    try:
        return av.codec.Codec(name, "w").type == "video"
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False


def _check_encoder(name: str, encoding: Encoding) -> None:
    """Refuse, naming what would work, an encoder this PyAV build does not have, a pixel format that is none or
    that the encoder cannot take (GIF makes its own), and a --crf outside the encoder's scale."""
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        have = [c for c in _KNOWN if c in av.codecs_available]
        raise MediaError(f"encoder {name!r} is not available in this PyAV build; available: {', '.join(have)}") \
            from None
    takes = [f.name for f in codec.video_formats or ()]
    try:
        av.VideoFormat(encoding.pix_fmt)
        known = True
    except (ValueError, TypeError):
        known = False
    if not known or name != GIF and takes and encoding.pix_fmt not in takes:
        what = "is not a pixel format" if not known else f"is not one that {name} encodes"
        raise MediaError(f"--pix-fmt {encoding.pix_fmt!r} {what}; {name} takes {', '.join(takes)} (yuv420p plays "
                         f"everywhere)")
    low, high = CRF_RANGES.get(name, (None, None))
    if encoding.crf is not None and low is not None and not low <= encoding.crf <= high:
        raise MediaError(f"--crf {encoding.crf} is outside {name}'s scale of {low} (best) to {high}")


def encoder_options(codec: str, encoding: Encoding) -> dict[str, str]:
    """The encoder's own options: quality (--crf), speed (--preset, in SVT-AV1's numbers for it), quiet logs, and
    zero latency for a live output."""
    options = {}
    if encoding.crf is not None:
        options["crf"] = str(encoding.crf)
        if codec == "libvpx-vp9":
            options.update(b="0", **{"row-mt": "1"})  # constant quality, rows in parallel
    if encoding.preset is not None and codec in ("libx264", "libx265"):
        options["preset"] = str(encoding.preset)
    elif encoding.preset is not None and codec == "libsvtav1":  # SVT-AV1 takes 0 (slowest) to 13
        options["preset"] = str(_SVT_PRESETS.get(str(encoding.preset), encoding.preset))
    if codec == "libx265":
        options["x265-params"] = "log-level=error"  # x265 reports every setting on stderr otherwise
    if encoding.live and codec in ("libx264", "libx265"):
        options["tune"] = "zerolatency"  # each frame leaves the encoder as it goes in
    elif encoding.live and codec == "libvpx-vp9":
        options.update({"lag-in-frames": "0", "deadline": "realtime"})
    return options
