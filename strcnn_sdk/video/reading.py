"""Reading: the frames of a video file, standard input, a URL or a device, or of a folder or glob of images, in
order and as RGB arrays with their times (`Reader`, `iter_frames`), with the packets of the streams an output
carries over."""

from __future__ import annotations

import glob
import math
import os
import select
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from .colour import DECODE, HDR_TRANSFERS, MATRICES, Colour, bits
from .errors import MediaError, MediaWarning, NotAVideo, StreamLost
from .locating import TEXT_FILE, Location, image_paths, is_source_code, is_text, is_video_path, locate


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
                self.paths = image_paths(path)
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
            if kind == "path" and is_source_code(name):
                raise NotAVideo(f"{name}: {TEXT_FILE}") from None
            if kind == "path" and is_text(name):
                hint = "; it holds text, not video: a damaged or misnamed file"
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
        if context.color_trc in HDR_TRANSFERS:
            warnings.warn(f"{self.name}: HDR video ({HDR_TRANSFERS[context.color_trc]}); the model was trained on "
                          f"SDR footage, so expect less gain and possible colour shifts", MediaWarning, stacklevel=3)
        return self._decode(stream)

    def _decode(self, stream) -> Iterator[Frame | av.Packet]:
        colour, count = self.source.colour, 0
        deep = bits(stream.codec_context.pix_fmt or "yuv420p") > 8
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
                                             src_colorspace=MATRICES[colour.matrix], src_color_range=colour.range,
                                             interpolation=DECODE).to_ndarray()
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
