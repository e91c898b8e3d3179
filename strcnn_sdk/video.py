"""Reading and writing video (PyAV) and image folders, frame by frame, as RGB uint8 arrays.

Inputs are files, folders or globs of images, standard input (`-`), network URLs and FFmpeg input devices
(`FORMAT:SPEC`); outputs are files, image folders and standard output (`-`). See `locate`.

Colour: a video's own matrix and range are used to decode it (BT.709 assumed for untagged HD, BT.601 below
720 lines, limited range when untagged) and the same are used to encode and tagged on the output, so colours
survive a round trip. Timing: output frames keep the input's timestamps and time base, so constant rates stay
exact (30000/1001) and variable rates keep their timestamps. Audio, subtitle and data streams are copied where
the output container can hold them; otherwise audio is encoded to a codec it can hold, text subtitles are
rewritten in its text format, and anything else is left out with a `MediaWarning` naming the stream.
"""

from __future__ import annotations

import codecs
import errno
import glob
import io
import json
import math
import os
import re
import select
import warnings
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# what a search of a folder for videos takes (a file named on its own is tried whatever its name)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv",
                  ".wmv", ".asf", ".3gp", ".ogv", ".mxf", ".vob", ".dv", ".nut", ".y4m", ".h264", ".264", ".hevc",
                  ".265")
# AVColorSpace (what a stream is tagged with) -> swscale's matrix; 2 is "unspecified"
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
# swscale's fast defaults darken a decode/encode round trip by one to two levels; these flags make it unbiased
# (about 49 dB RGB PSNR through lossless 4:2:0 instead of 45 dB, with no shift in the mean)
_DECODE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_ENCODE = Interpolation.AREA | Interpolation.ACCURATE_RND
_BT709, _BT601 = 1, 6  # AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic codes
_HDR_TRANSFERS = {16: "PQ, SMPTE ST 2084", 18: "HLG, ARIB STD-B67"}  # AVColorTransferCharacteristic


AUDIO_MODES = ("copy", "encode", "none")  # copy where the output holds the codec (else encode), always encode, drop
# (codec the container must hold, encoder), in order of preference: AAC where it fits, Opus for WebM, MP3 for AVI
_AUDIO_ENCODERS = (("aac", "aac"), ("opus", "libopus"), ("mp3", "libmp3lame"))
_TEXT_SUBTITLES = ("subrip", "srt", "text", "mov_text", "webvtt", "ass", "ssa")
_SUBTITLE_TARGETS = ("subrip", "mov_text", "webvtt")  # Matroska, MP4/MOV, WebM
# x264's preset names as SVT-AV1's numeric presets (numbers pass through)
_SVT_PRESETS = {"placebo": 0, "veryslow": 2, "slower": 4, "slow": 5, "medium": 7, "fast": 8, "faster": 9,
                "veryfast": 10, "superfast": 11, "ultrafast": 12}
_ASS_TAGS = re.compile(r"\{[^}]*\}")
_RECORD_TAG = "comment"  # the one free-text tag that MP4, MOV, Matroska, WebM and AVI all keep
NETWORK_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "rtp")
PIPE_FORMAT = "matroska"  # what standard output gets unless told: it streams and holds any codec
# Muxer options for standard output, so that a reader gets each part of the stream within 0.2 s: MP4 streams only
# fragmented (an empty index up front, then self-contained fragments at each keyframe and every 0.2 s; negative
# composition offsets keep the timestamps when audio starts before the video), Matroska in short clusters
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets",
               "frag_duration": "200000"}
_STREAMING = {"mp4": _FRAGMENTED, "mov": _FRAGMENTED, "matroska": {"cluster_time_limit": "200"},
              "webm": {"cluster_time_limit": "200"}}


class MediaError(ValueError):
    """An input or output that cannot be read or written; the message says what and what to do."""


TEXT_FILE = "a text file (source code or notes), not a video"


class NotAVideo(MediaError):
    """A file that is no video at all, rather than a damaged one: text (TypeScript's .ts and .mts share video
    extensions), or a container without a video stream."""


def is_text(path: str) -> bool:
    """Whether a file begins as UTF-8 text without NUL bytes: source code or notes, which no video container is."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is no error
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and b"\0" not in head


class MediaWarning(UserWarning):
    """A stream of the input that the output leaves out or converts; the message names it."""


@dataclass
class Colour:
    """A stream's colour tags: matrix (AVColorSpace), range, primaries and transfer characteristic."""

    matrix: int
    range: int
    primaries: int
    trc: int

    @classmethod
    def default(cls, height: int) -> Colour:
        """What players assume for an untagged stream: BT.709 from 720 lines up, else BT.601; limited range."""
        tag = _BT709 if height >= 720 else _BT601
        return cls(matrix=tag, range=int(ColorRange.MPEG), primaries=tag, trc=tag)

    @classmethod
    def of(cls, context, height: int) -> Colour:
        """The tags of a decoder context, with untagged values filled in as players do."""
        default, unspecified = cls.default(height), (0, 2)
        return cls(matrix=context.colorspace if context.colorspace in _MATRICES else default.matrix,
                   range=context.color_range if context.color_range in (1, 2) else default.range,
                   primaries=context.color_primaries if context.color_primaries not in unspecified
                   else default.primaries,
                   trc=context.color_trc if context.color_trc not in unspecified else default.trc)


@dataclass
class Frame:
    """One decoded picture as RGB [H, W, 3], uint8 (float32 in [0, 1] from video of more than 8 bits): its
    presentation time in seconds (None for images), its
    timestamp in the stream's time base (None where the frames are numbered at a constant rate) and, for an
    image, its file name."""

    rgb: np.ndarray
    pts: int | None = None
    name: str | None = None
    time: Fraction | None = None


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


@dataclass
class Source:
    """What a reader knows about its input before the first frame, for the writer and the progress bar."""

    name: str
    width: int
    height: int
    frames: int | None
    rate: Fraction | None = None
    time_base: Fraction | None = None
    colour: Colour | None = None
    rotation: int = 0
    aspect: Fraction | None = None  # sample (pixel) aspect ratio, where the input gives one
    copy_streams: list = field(default_factory=list)


def is_video_path(path: Path) -> bool:
    """Video files are anything not an image, a folder or a glob."""
    return not (path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir() or glob.has_magic(str(path))
                or path.suffix == "")


def natural(path: Path) -> list:
    """Sort key that orders numbers by value: frame2.png before frame10.png."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(path))]


def _image_paths(spec: Path) -> list[Path]:
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


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8 HxWx3."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)  # a damaged file is reported below, not by OpenCV's log
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    finally:
        logging.setLogLevel(level)
    if image is None:
        raise MediaError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def iter_frames(source: str | os.PathLike, **options) -> Iterator[Frame]:
    """The frames of a video (a file, `-` for standard input, a URL, a `FORMAT:SPEC` device, or a folder or
    quoted glob of images) in order, decoded as RGB (uint8, or float32 in [0, 1] for video of more than 8 bits)
    with their times: for an application that runs its own loop, e.g. into `Deblurrer.push`. `options` are
    `Reader`'s (input_format, options, frames, duration, reconnect, timeout)."""
    with Reader(source, **options) as reader:
        for item in reader:
            if isinstance(item, Frame):
                yield item


class StreamLost(MediaError):
    """A network input dropped and could not be reopened in time; what was read before is kept."""


class OutputClosed(MediaError):
    """The program reading standard output closed it (a player was quit): the run stops there."""


class _Stdin:
    """Standard input as a file for FFmpeg, read here rather than by FFmpeg so that a wait for data can end: by
    Ctrl-C (FFmpeg's own read would resume after it; this one returns as at the end of the stream and remembers
    it, to be raised once FFmpeg has returned) and by `stopping`, set from another thread when the run stops."""

    def __init__(self, stopping: threading.Event) -> None:
        self.fd, self.stopping, self.interrupted = sys.stdin.fileno(), stopping, False

    def read(self, size: int) -> bytes:
        if sys.platform == "win32":  # select() does not take pipes there: a plain read, which waits
            return os.read(self.fd, size)
        try:
            while not self.stopping.is_set():
                if select.select([self.fd], [], [], 0.1)[0]:
                    return os.read(self.fd, size)
        except KeyboardInterrupt:
            self.interrupted = True
            self.stopping.set()
        return b""


class Reader:
    """Frames of a video (file, standard input, URL or device), or of a folder or glob of images, in order. Use as
    a context manager.

    Opening reads up to the first frame, so that a missing, damaged or frameless input fails before any output
    exists, and `source` (size, timing, colour, rotation) is known from the start. `input_format` names the
    FFmpeg format where it cannot be guessed (raw streams on a pipe); `options` are the demuxer's (rtsp_transport,
    video_size, ...). `frames` and `duration` (seconds of the input's timestamps) end the input early, which is
    how an endless live source ends; packets of other streams past that time are left out too. A URL that fails
    mid-stream is reopened, waiting 0.5 s, 1 s, 2 s ... between tries, for up to `reconnect` seconds, then
    `StreamLost` is raised; `timeout` is how long a URL may stay silent before that counts as a failure."""

    def __init__(self, spec: str | os.PathLike | Location, *, input_format: str | None = None,
                 options: dict[str, str] | None = None, frames: int | None = None, duration: float | None = None,
                 reconnect: float = 30.0, timeout: float = 10.0) -> None:
        self.location = spec if isinstance(spec, Location) else locate(spec)
        self.name = self.location.text
        self.input_format, self.options = input_format, dict(options or {})
        self.frames, self.duration = frames, duration
        self.reconnect, self.timeout = reconnect, timeout
        self.missing = 0  # frames absent from a live input's timestamps: lost upstream, before they reached us
        # the containers before a reconnection, closed with this one: packets of theirs may still be queued
        # downstream, and those name their streams
        self.container, self._dropped = None, []
        self._stopping = threading.Event()
        self._stdin = _Stdin(self._stopping) if self.location.kind == "pipe" else None
        if frames is not None and frames < 1 or duration is not None and duration <= 0:
            raise MediaError("--frames and --duration must be positive")
        path = Path(self.name)
        if self.location.kind == "path" and not path.exists() and not glob.has_magic(self.name):
            raise MediaError(f"{self.name}: no such file or folder")
        self._head = []
        try:
            if self.location.kind != "path" or is_video_path(path):
                items = self._open_video()
            else:
                self.paths = _image_paths(path)
                items = self._images()
            self._items = self._limited(items)
            for item in self._items:
                self._head.append(item)
                if isinstance(item, Frame):
                    break
            else:
                raise MediaError(f"{self.name}: the video has no frames")
        except BaseException:
            self.close()
            if self._stdin is not None and self._stdin.interrupted:  # Ctrl-C while waiting for the first bytes
                raise KeyboardInterrupt from None
            raise
        first = self._head[-1]
        self.source.height, self.source.width = first.rgb.shape[:2]
        if duration is not None and first.time is None:
            self.close()
            raise MediaError(f"{self.name}: has no timestamps, so --duration cannot apply; use --frames")
        expected = [n for n in (self.source.frames, frames,
                                duration and self.source.rate and math.ceil(duration * self.source.rate)) if n]
        self.source.frames = min(expected) if expected else None

    def _open(self):
        """The container of a video input, opened (not yet read)."""
        kind, name = self.location.kind, self.name
        if kind == "path" and not os.access(name, os.R_OK):
            raise MediaError(f"{name}: not readable (permission denied)")
        try:
            return av.open(self._stdin or self.location.target, "r", format=self.input_format or self.location.format,
                           container_options=self.options, timeout=self.timeout if kind == "url" else None)
        except av.FFmpegError as e:
            hint = {"pipe": "; name its format with --input-format (e.g. matroska, mpegts, nut, yuv4mpegpipe)",
                    "url": "; check the address and that the stream is running",
                    "device": "; check the device name and its options (--input-option)"}.get(kind, "")
            if kind == "path" and is_text(name):
                raise NotAVideo(f"{name}: {TEXT_FILE}") from None
            raise MediaError(f"{name}: not a readable video ({e.strerror or e}){hint}") from None

    def _open_video(self) -> Iterator[Frame | av.Packet]:
        self.container = self._open()
        if not self.container.streams.video:
            self.close()
            raise NotAVideo(f"{self.name}: has no video (no video stream, or one without frames)")
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        context = stream.codec_context
        copy = [s for s in self.container.streams if s is not stream and s.type in ("audio", "subtitle", "data")]
        # AVI keeps no presentation timestamps (frames with B-frames come out labelled in decode order): its
        # frames are numbered at the constant rate instead
        numbered = "avi" in self.container.format.name.split(",")
        self.source = Source(self.name, context.width, context.height, stream.frames or None,
                             stream.average_rate or stream.guessed_rate, None if numbered else stream.time_base,
                             Colour.of(context, context.height), aspect=context.sample_aspect_ratio or None,
                             copy_streams=copy)
        if context.color_trc in _HDR_TRANSFERS:
            warnings.warn(f"{self.name}: HDR video ({_HDR_TRANSFERS[context.color_trc]}); the model was trained on "
                          f"SDR footage, so expect less gain and possible colour shifts", MediaWarning, stacklevel=3)
        return self._decode(stream)

    def _decode(self, stream) -> Iterator[Frame | av.Packet]:
        colour, count = self.source.colour, 0
        deep = _bits(stream.codec_context.pix_fmt or "yuv420p") > 8
        # seconds added to timestamps after a reconnection, so that they go on from the last frame's time
        shift, last, resumed = Fraction(0), None, False
        while True:
            try:
                for packet in self.container.demux(stream, *self.source.copy_streams):
                    if resumed and packet.pts is not None:  # the first packet after reopening
                        step = 1 / self.source.rate if self.source.rate else Fraction(0)
                        shift, resumed = max(shift, last + step - packet.pts * packet.time_base), False
                    if packet.stream is not stream:
                        if packet.dts is not None:
                            if shift:
                                packet.pts = packet.pts + round(shift / packet.time_base)
                                packet.dts = packet.dts + round(shift / packet.time_base)
                            yield packet
                        continue
                    for frame in packet.decode():
                        if count == 0:
                            self.source.rotation = int(frame.rotation or 0)
                            size = frame.width, frame.height
                            if frame.pts is None:  # a raw stream (.h264, .hevc): numbered at its frame rate
                                self.source.time_base = None
                                self.source.rate = stream.guessed_rate or stream.average_rate or None
                        elif (frame.width, frame.height) != size:
                            raise MediaError(f"{self.name}: frame {count} is {frame.width}x{frame.height} but the "
                                             f"video starts at {size[0]}x{size[1]}; a size change mid-video is not "
                                             f"supported: cut the video there and deblur the parts separately")
                        count += 1
                        rgb = frame.reformat(format="rgb48le" if deep else "rgb24",
                                             src_colorspace=_MATRICES[colour.matrix], src_color_range=colour.range,
                                             interpolation=_DECODE).to_ndarray()
                        if deep:  # more than 8 bits: float32 keeps them through the model
                            rgb = rgb.astype(np.float32) / 65535
                        if self.source.time_base is not None:
                            last = frame.pts * stream.time_base + shift
                            yield Frame(rgb, round(last / self.source.time_base), time=last)
                        else:
                            last = (count - 1) / self.source.rate if self.source.rate else None
                            yield Frame(rgb, None, time=last)
                promised = stream.frames or 0  # as the header counts them; a frame or two fewer is edit lists
                if not self.location.live and promised - count > max(1, promised // 100):
                    warnings.warn(f"{self.name}: the input ended after {count} of the {promised} frames its header "
                                  f"promises: the file is cut short or damaged; the {count} frames read are "
                                  f"written", MediaWarning, stacklevel=2)
                return
            except av.FFmpegError as e:
                if self.location.kind == "pipe" and "mp4" in self.container.format.name.split(","):
                    raise MediaError(f"{self.name}: MP4 cannot be read from a pipe unless fragmented: its index is "
                                     f"usually at the end; pass the file's name, or pipe Matroska or MPEG-TS "
                                     f"(ffmpeg -i in.mp4 -c copy -f matroska -)") from None
                if self.location.kind != "url" or self.reconnect <= 0:
                    raise MediaError(f"{self.name}: damaged video after {count} frames ({e.strerror or e})") \
                        from None
                stream, resumed = self._reopen(e, count), last is not None

    def _reopen(self, error: Exception, count: int):
        """Open a dropped URL again, with growing waits, for up to `reconnect` seconds; its video stream."""
        start, wait = time.monotonic(), 0.5
        while not self._stopping.wait(min(wait, max(0.0, self.reconnect - (time.monotonic() - start)))):
            try:
                container = self._open()
            except MediaError as e:
                error = e
                if time.monotonic() - start >= self.reconnect:
                    break
                wait = min(2 * wait, 8.0)
                continue
            if not container.streams.video:
                container.close()
                break
            self._dropped.append(self.container)
            self.container = container
            warnings.warn(f"{self.name}: the stream dropped after {count} frames and was reopened after "
                          f"{time.monotonic() - start:.1f} s", MediaWarning, stacklevel=2)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            by_index = {s.index: s for s in container.streams}
            self.source.copy_streams = [by_index[s.index] for s in self.source.copy_streams if s.index in by_index]
            return stream
        why = getattr(error, "strerror", None) or error
        raise StreamLost(f"{self.name}: the stream dropped after {count} frames ({why}) and could not be reopened "
                         f"within {self.reconnect:g} s (--reconnect)")

    def _limited(self, items: Iterator[Frame | av.Packet]) -> Iterator[Frame | av.Packet]:
        """`items` up to `frames` frames and `duration` seconds (other streams' packets cut at the same time),
        counting the frames a live input's timestamps show missing."""
        count, end, previous = 0, None, None
        for item in items:
            if not isinstance(item, Frame):
                if end is None or item.pts is None or item.pts * item.time_base < end:
                    yield item
                continue
            if item.time is not None:
                if previous is None:  # the first frame: the end is counted from its time (the rate is known now)
                    rate = self.source.rate
                    spans = [Fraction(str(s)) for s in (self.duration, self.frames and rate and Fraction(self.frames)
                                                         / rate) if s]
                    end = item.time + min(spans) if spans else None
                if end is not None and item.time >= end:
                    break
                if self.location.live and previous is not None and self.source.rate:
                    self.missing += max(0, round((item.time - previous) * self.source.rate) - 1)
                previous = item.time
            yield item
            count += 1
            if count == self.frames:
                break
        if self.missing:
            warnings.warn(f"{self.name}: the gaps in the input's timestamps add up to {self.missing} frames at its "
                          f"rate: the source dropped frames before they reached strcnn (a camera or network stream "
                          f"does not wait; see --realtime), or its frame rate varies", MediaWarning, stacklevel=2)

    def _images(self) -> Iterator[Frame]:
        size = None
        for path in self.paths:
            rgb = read_image(path)
            if size is None:
                size = rgb.shape[:2]
                self.source = Source(self.name, size[1], size[0], len(self.paths))
            elif rgb.shape[:2] != size:
                raise MediaError(f"{path}: is {rgb.shape[0]}x{rgb.shape[1]} but the first image is "
                                 f"{size[0]}x{size[1]}; all images of a sequence must have one size")
            yield Frame(rgb, name=path.name)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stop(self) -> None:
        """Cut short a wait between reconnection tries (from another thread), e.g. when the run is stopped."""
        self._stopping.set()

    def close(self) -> None:
        for container in [self.container, *self._dropped]:
            if container is not None:
                container.close()
        self.container, self._dropped = None, []

    def __iter__(self) -> Iterator[Frame | av.Packet]:
        """Frames in order; for a video also the packets of the streams to copy, where they come."""
        yield from self._head
        self._head = []
        yield from self._items


@dataclass
class Encoding:
    """How to encode a video output."""

    codec: str | None = None  # None: libx264, or libvpx-vp9 for .webm (which cannot hold H.264)
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    fps: Fraction = Fraction(25)  # for image inputs, which carry no timing
    audio: str = "copy"  # one of AUDIO_MODES
    format: str | None = None  # the container: None for what the file's name says (Matroska on standard output)
    live: bool = False  # low latency: x264/x265 tuned for zero latency (no B-frames, no lookahead), VP9 without lag
    record: dict | None = None  # what made the output (model, settings), kept in its metadata: see `read_record`


def codec_for(path: str | os.PathLike, encoding: Encoding) -> str:
    """The encoder for an output: the one asked for, else what its container holds and browsers play."""
    webm = encoding.format == "webm" or encoding.format is None and Path(path).suffix.lower() == ".webm"
    return encoding.codec or ("libvpx-vp9" if webm else "libx264")


# the quality scale (--crf) of the encoders that take one: lower is better
CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libsvtav1": (1, 63)}


def check_encoder(name: str, encoding: Encoding) -> None:
    """Refuse, naming what would work, an encoder this PyAV build does not have, a pixel format that is none or
    that the encoder cannot take, and a --crf outside the encoder's scale: before any frame is decoded."""
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        have = [c for c in ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4") if c in av.codecs_available]
        raise MediaError(f"encoder {name!r} is not available in this PyAV build; available: {', '.join(have)}") \
            from None
    takes = [f.name for f in codec.video_formats or ()]
    try:
        av.VideoFormat(encoding.pix_fmt)
        known = True
    except (ValueError, TypeError):
        known = False
    if not known or takes and encoding.pix_fmt not in takes:
        what = "is not a pixel format" if not known else f"is not one that {name} encodes"
        raise MediaError(f"--pix-fmt {encoding.pix_fmt!r} {what}; {name} takes {', '.join(takes)} (yuv420p plays "
                         f"everywhere)")
    low, high = CRF_RANGES.get(name, (None, None))
    if encoding.crf is not None and low is not None and not low <= encoding.crf <= high:
        raise MediaError(f"--crf {encoding.crf} is outside {name}'s scale of {low} (best) to {high}")


class Writer:
    """Writes RGB frames to a video file, an image folder or standard output ("pipe:1"). Use `open_output` to get
    one."""

    def __init__(self, path: Path | str, source: Source, encoding: Encoding, width: int) -> None:
        self.path, self.source, self.encoding = path, source, encoding
        self.width, self.height = width, source.height
        self.count = 0
        self.container = None
        piped = path == "pipe:1"
        folder = not piped and not is_video_path(Path(path))
        # float frames (from input of more than 8 bits) are written with 16 bits where the output keeps them
        self.deep = folder or _bits(encoding.pix_fmt) > 8
        if folder:
            path.mkdir()
            return
        codec = codec_for(path, encoding)
        check_encoder(codec, encoding)
        fmt = encoding.format or (PIPE_FORMAT if piped else None)
        try:
            self.container = av.open(str(path), "w", format=fmt, options=_STREAMING.get(fmt) if piped else None)
        except (av.FFmpegError, ValueError) as e:  # ValueError: a --format FFmpeg does not know
            what = "standard output: cannot write this kind of stream" if piped else \
                f"{Path(path).name}: cannot write this kind of file"  # (path is a temporary beside the output)
            raise MediaError(f"{what} ({getattr(e, 'strerror', None) or e}); choose another "
                             f"{'--format' if piped else 'name or --format'}") from None
        try:  # the container is closed again if anything below fails: no file handle or muxer is left open
            if encoding.record is not None:
                self.container.metadata[_RECORD_TAG] = json.dumps(encoding.record, sort_keys=True)
            self.stream = self._video_stream(codec, source, encoding)
            self.extras = {}  # input stream index -> what carries its packets into the output
            for template in source.copy_streams:
                extra = _extra_stream(self.container, template, encoding.audio)
                if extra is not None:
                    self.extras[template.index] = extra
            # Write the header now: the muxer may change a stream's time base there (mp4 wants 1/10000 or
            # finer), and every packet must be encoded after that, or the first ones are stamped in the old one.
            self.container.start_encoding()
        except BaseException:
            _close_quietly(self.container)
            self.container = None
            raise

    def _video_stream(self, codec: str, source: Source, encoding: Encoding):
        rate = source.rate or encoding.fps
        stream = self.container.add_stream(codec, rate=rate)
        # AVI stores one frame per tick of a constant rate, so there frames are numbered; elsewhere the input's
        # timestamps are kept (variable rates included), and the encoder works in the input's time base too, so
        # that no timestamp is rounded to the frame rate
        self.numbered = "avi" in self.container.format.name.split(",") or source.time_base is None
        self.time_base = 1 / Fraction(rate) if self.numbered else source.time_base
        stream.time_base = stream.codec_context.time_base = self.time_base
        subsampled = encoding.pix_fmt.startswith(("yuv420", "yuv422", "nv12"))
        self.pad = (self.height % 2 if subsampled else 0, self.width % 2 if subsampled else 0)
        stream.width, stream.height = self.width + self.pad[1], self.height + self.pad[0]
        if any(self.pad):
            warnings.warn(f"{self.width}x{self.height} frames become {stream.width}x{stream.height} (the last "
                          f"{'row' if self.pad[0] else 'column'}{' and column' if all(self.pad) else ''} repeated): "
                          f"{encoding.pix_fmt} needs even sides; --pix-fmt yuv444p or a folder of PNGs keeps the size",
                          MediaWarning, stacklevel=2)
        stream.pix_fmt = encoding.pix_fmt
        colour = self.colour = source.colour or Colour.default(self.height)
        context = stream.codec_context
        context.colorspace, context.color_range = colour.matrix, colour.range
        context.color_primaries, context.color_trc = colour.primaries, colour.trc
        if source.aspect is not None:
            context.sample_aspect_ratio = source.aspect
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
        stream.options = options
        if source.rotation:
            stream.set_display_rotation(source.rotation)
        return stream

    def write(self, rgb: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Add one frame with its timestamp (None: the next one at the output rate): HxWx3 RGB, uint8, or float32
        in [0, 1] from an input of more than 8 bits, which keeps its precision where the output has it (a pixel
        format of more than 8 bits, or 16-bit PNGs)."""
        deep = rgb.dtype == np.float32 and self.deep
        rgb = (rgb * (65535 if deep else 255) + 0.5).astype(np.uint16 if deep else np.uint8) \
            if rgb.dtype == np.float32 else rgb
        if self.container is None:
            out = self.path / (name if name else f"frame_{self.count:06d}.png")
            if not cv2.imwrite(str(out.with_suffix(".png")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise MediaError(f"{out}: could not be written")
            self.count += 1
            return
        if any(self.pad):
            rgb = np.pad(rgb, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24").reformat(
            format=self.encoding.pix_fmt, dst_colorspace=_MATRICES[self.colour.matrix],
            dst_color_range=self.colour.range, interpolation=_ENCODE)
        _clear_padding(frame)
        frame.pts = self.count if self.numbered or pts is None else pts
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def copy(self, packet: av.Packet) -> None:
        """Carry a packet of another stream (audio, subtitles, data) into the output: copied, encoded anew or
        rewritten, as decided when the output was opened."""
        if self.container is not None and packet.stream.index in self.extras:
            self.extras[packet.stream.index].write(packet)

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            for extra in self.extras.values():
                extra.close()
            self.container.close()


def _clear_padding(frame: av.VideoFrame) -> None:
    """Zero the bytes past each row's end in a planar frame's planes. swscale leaves them uninitialised and
    libx264 reads them, so without this the same frames can encode to different bits from run to run (measured:
    2 to 8 of 300 encodes of one clip differed, within one process; none once cleared)."""
    if not frame.format.is_planar:
        return
    for index, plane in enumerate(frame.planes):
        samples = [c.bits for c in frame.format.components if c.plane == index]
        used = plane.width * len(samples) * (2 if max(samples) > 8 else 1)
        if plane.line_size > used:
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, used:] = 0


def read_record(path: str | os.PathLike) -> dict | None:
    """What made a video this package wrote (`Encoding.record`), or None for any other file or one unreadable."""
    try:
        with av.open(os.fspath(path), "r") as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
    except (av.FFmpegError, OSError):
        return None
    try:
        record = json.loads(tags.get(_RECORD_TAG, ""))
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "strcnn_sdk" in record else None


def _bits(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (8 for yuv420p, 10 for yuv420p10le)."""
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return 8


def _close_quietly(container) -> None:
    """Close a container that is being abandoned after an error, which is what gets reported."""
    try:
        container.close()
    except (ValueError, av.FFmpegError):
        pass


def _describe_stream(stream) -> str:
    name = (getattr(stream.codec_context, "name", None) or stream.name or stream.metadata.get("handler_name")
            or "unknown codec")
    return f"stream #{stream.index} ({stream.type}, {name})"


def _holds(format_name: str, template) -> bool:
    """Whether a container of this format can hold a copy of `template`: its header is written to memory."""
    probe = av.open(io.BytesIO(), "w", format=format_name)
    try:
        probe.add_stream_from_template(template)
        probe.start_encoding()
        return True
    except (ValueError, av.FFmpegError):
        return False
    finally:
        _close_quietly(probe)


def _extra_stream(container, template, audio: str):
    """How a non-video stream of the input goes into `container`: a copy where the container holds it (and, for
    audio, `audio` is "copy"), else encoded audio or rewritten text subtitles; None (with a MediaWarning naming
    the stream) where nothing fits, or for audio with `audio` "none"."""
    fmt = container.format.name
    what = _describe_stream(template)
    if template.type == "audio":
        if audio == "none":
            return None
        if audio == "copy" and _holds(fmt, template):
            return _Copy(container, template)
        encoder = next((e for codec, e in _AUDIO_ENCODERS if codec in container.supported_codecs
                        and e in av.codecs_available), None)
        if encoder is not None:
            if audio == "copy":
                warnings.warn(f"{what}: {fmt} cannot hold it; encoded as {encoder}", MediaWarning, stacklevel=4)
            return _AudioEncoder(container, template, encoder)
    elif _holds(fmt, template):
        return _Copy(container, template)
    elif template.type == "subtitle" and template.codec_context.name in _TEXT_SUBTITLES:
        target = next((t for t in _SUBTITLE_TARGETS if t in container.supported_codecs), None)
        if target is not None:
            warnings.warn(f"{what}: {fmt} cannot hold it; rewritten as {target}", MediaWarning, stacklevel=4)
            return _Subtitles(container, template, target)
    warnings.warn(f"{what}: left out, {fmt} cannot hold it and it cannot be converted", MediaWarning, stacklevel=4)
    return None


class _Copy:
    """Packets muxed untouched."""

    def __init__(self, container, template) -> None:
        self.container, self.stream = container, container.add_stream_from_template(template)

    def write(self, packet: av.Packet) -> None:
        packet.stream = self.stream
        self.container.mux(packet)

    def close(self) -> None:
        pass


class _AudioEncoder:
    """Audio decoded and encoded anew (e.g. AAC into WebM, which holds Opus and Vorbis only), resampled to a
    format and rate the encoder takes, in frames of its frame size."""

    def __init__(self, container, template, encoder: str) -> None:
        context, codec = template.codec_context, av.codec.Codec(encoder, "w")
        rates = codec.audio_rates or ()
        self.rate = context.sample_rate if not rates or context.sample_rate in rates else \
            (48000 if 48000 in rates else max(rates))
        self.container, self.source, self.resampler = container, template, None
        self.stream = container.add_stream(encoder, rate=self.rate, layout=context.layout.name)
        self.format = codec.audio_formats[0].name if codec.audio_formats else None

    def write(self, packet: av.Packet | None) -> None:
        for frame in self.source.codec_context.decode(packet):
            if self.resampler is None:  # the encoder's frame size is known once the output is started
                self.resampler = av.AudioResampler(self.format, self.stream.codec_context.layout, self.rate,
                                                   frame_size=self.stream.codec_context.frame_size or None)
            self._encode(self.resampler.resample(frame))

    def _encode(self, frames) -> None:
        for frame in frames:
            self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.write(None)
        if self.resampler is not None:
            self._encode(self.resampler.resample(None))
        self.container.mux(self.stream.encode(None))


class _Subtitles:
    """Text subtitles rewritten packet by packet into another text codec (SRT <-> mov_text <-> WebVTT, ASS to
    plain text), with their timing."""

    def __init__(self, container, template, target: str) -> None:
        self.container, self.codec, self.target = container, template.codec_context.name, target
        self.stream = container.add_mux_stream(target)
        self.stream.time_base = template.time_base

    def write(self, packet: av.Packet) -> None:
        data = bytes(packet)
        if self.codec == "mov_text":
            text = data[2:2 + int.from_bytes(data[:2], "big")].decode("utf-8", "replace")
        else:
            text = data.decode("utf-8", "replace")
            if self.codec in ("ass", "ssa"):  # ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
                text = _ASS_TAGS.sub("", text.split(",", 8)[-1]).replace("\\N", "\n").replace("\\n", "\n")
        payload = text.encode()
        if self.target == "mov_text":
            payload = len(payload).to_bytes(2, "big") + payload
        out = av.Packet(payload)
        out.pts, out.dts, out.duration, out.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
        out.stream = self.stream
        self.container.mux(out)

    def close(self) -> None:
        pass


@contextmanager
def open_output(spec: str | os.PathLike, source: Source, encoding: Encoding, width: int) -> Iterator[Writer]:
    """A Writer onto an output: standard output for "-" (written as it goes: a stream cannot be taken back),
    else a file or folder by `open_atomic`."""
    if locate(spec, writing=True).kind != "pipe":
        with open_atomic(Path(spec), source, encoding, width) as writer:
            yield writer
        return
    writer = Writer("pipe:1", source, encoding, width)
    try:
        yield writer
        writer.close()
        writer = None
    except av.FFmpegError as e:
        if e.errno == errno.EPIPE:
            raise OutputClosed(f"standard output was closed by the program reading it after {writer.count} "
                               f"frames") from None
        raise MediaError(f"standard output: writing failed ({e.strerror or e})") from None
    finally:
        if writer is not None and writer.container is not None:
            _close_quietly(writer.container)


@contextmanager
def open_atomic(path: Path, source: Source, encoding: Encoding, width: int) -> Iterator[Writer]:
    """A Writer onto a temporary file (or folder) beside `path`, renamed to `path` only when complete: an
    interruption, a crash or a full disk never leaves a partial output under the final name."""
    path = Path(path)
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise MediaError(f"{path.parent}: output folder {what}")
    if not os.access(path.parent, os.W_OK):
        raise MediaError(f"{path.parent}: output folder is not writable")
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    target = tmp / path.name if is_video_path(path) else tmp / "frames"
    writer = None
    try:
        writer = Writer(target, source, encoding, width)
        yield writer
        writer.close()
        writer = None
        if path.is_dir():  # a folder cannot be replaced in one rename: set it aside, deleted with tmp below
            os.replace(path, tmp / "replaced")
        os.replace(target, path)
    except av.FFmpegError as e:
        raise MediaError(f"{path}: writing failed ({e.strerror or e})") from None
    except OSError as e:
        raise MediaError(f"{path}: writing failed ({e.strerror or e})") from None
    finally:
        if writer is not None and writer.container is not None:
            _close_quietly(writer.container)
        if (tmp / "replaced").exists() and not path.exists():  # interrupted between the two renames
            os.replace(tmp / "replaced", path)
        shutil.rmtree(tmp, ignore_errors=True)
