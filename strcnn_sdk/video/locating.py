"""Where inputs and outputs are: files, image folders and globs, pipes, network URLs and FFmpeg devices (`locate`),
and which files a folder search takes as videos, images or source code."""

from __future__ import annotations

import codecs
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import av

from .errors import MediaError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# what a search of a folder for videos takes (a file named on its own is tried whatever its name)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv",
                  ".wmv", ".asf", ".3gp", ".ogv", ".mxf", ".vob", ".dv", ".nut", ".y4m", ".h264", ".264", ".hevc",
                  ".265")
NETWORK_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "rtp")
TEXT_FILE = "a text file (source code or notes), not a video"
# the extensions that source code shares with video: TypeScript's modules beside MPEG transport streams and AVCHD
TEXT_SUFFIXES = (".ts", ".mts", ".cts")


def is_text(path: str | os.PathLike) -> bool:
    """Whether a file begins as UTF-8 text without NUL bytes: source code or notes, which no video container is."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is no error
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and b"\0" not in head


def is_source_code(path: str | os.PathLike) -> bool:
    """Whether a file is source code under an extension it shares with video (`TEXT_SUFFIXES`): passed over by a
    search for videos, where a text file under any other video extension is a damaged video."""
    return Path(path).suffix.lower() in TEXT_SUFFIXES and is_text(os.fspath(path))


@dataclass(frozen=True)
class Location:
    """An input or an output as given: a path (file, folder or glob), standard input or output (`-`), a network
    URL, or an FFmpeg input device with its source (`v4l2:/dev/video0`, `lavfi:testsrc2`). Anything but a path is
    live: it has no length known ahead, may never end, and is not written atomically."""

    text: str
    kind: str  # "path", "pipe", "url" or "device"
    target: str  # what FFmpeg opens: the path, "pipe:0"/"pipe:1", the URL, or the device's source
    format: str | None = None  # the device's FFmpeg format

    @property
    def live(self) -> bool:
        return self.kind != "path"


def locate(spec: str | os.PathLike, writing: bool = False) -> Location:
    """What an input (or, with `writing`, an output) names. Strings stay strings: a URL is never made a `Path`
    (which would turn rtsp://h/x into rtsp:/h/x). An existing file wins over a device of the same spelling."""
    text = os.fspath(spec)
    if text == "-":
        return Location(text, "pipe", "pipe:1" if writing else "pipe:0")
    scheme, colon, rest = text.partition(":")
    if colon and rest.startswith("//") and scheme.lower() in NETWORK_SCHEMES:
        if writing:
            raise MediaError(f"{text}: writing to a URL is not supported; write to - (standard output) and pipe it "
                             f"into a streaming tool, e.g. ffmpeg -i - -c copy -f rtsp URL")
        return Location(text, "url", text)
    if colon and not writing and re.fullmatch(r"[a-z][a-z0-9_]+", scheme) and not os.path.exists(text):
        try:
            av.ContainerFormat(scheme, "r")
            return Location(text, "device", rest, scheme)
        except ValueError:  # not an input format of this FFmpeg: a path
            pass
    return Location(text, "path", text)


def is_video_path(path: Path) -> bool:
    """Video files are anything not an image, a folder or a glob."""
    return not (path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir() or glob.has_magic(str(path))
                or path.suffix == "")


def natural(path: Path) -> list:
    """Sort key that orders numbers by value: frame2.png before frame10.png."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(path))]


def image_paths(spec: Path) -> list[Path]:
    if spec.is_dir():
        try:
            paths = sorted((p for p in spec.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural)
        except OSError as e:
            raise MediaError(f"{spec}: folder not readable ({e.strerror or e})") from None
    else:
        paths = sorted((Path(p) for p in glob.glob(str(spec)) if Path(p).suffix.lower() in IMAGE_SUFFIXES),
                       key=natural)
    if not paths:
        raise MediaError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return paths
