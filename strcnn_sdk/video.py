"""Reading and writing video files (PyAV) and image folders, frame by frame, as RGB uint8 arrays.

Colour: a video's own matrix and range are used to decode it (BT.709 assumed for untagged HD, BT.601 below
720 lines, limited range when untagged) and the same are used to encode and tagged on the output, so colours
survive a round trip. Timing: output frames keep the input's timestamps and time base, so constant rates stay
exact (30000/1001) and variable rates keep their timestamps. Audio, subtitle and data streams are copied.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
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
# AVColorSpace (what a stream is tagged with) -> swscale's matrix; 2 is "unspecified"
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
# swscale's fast defaults darken a decode/encode round trip by one to two levels; these flags make it unbiased
# (about 49 dB RGB PSNR through lossless 4:2:0 instead of 45 dB, with no shift in the mean)
_DECODE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_ENCODE = Interpolation.AREA | Interpolation.ACCURATE_RND
_BT709, _BT601 = 1, 6  # AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic codes


class MediaError(ValueError):
    """An input or output that cannot be read or written; the message says what and what to do."""


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
    """One decoded picture as RGB uint8, with its timestamp in the stream's time base (None for images)."""

    rgb: np.ndarray
    pts: int | None = None
    name: str | None = None


@dataclass
class Source:
    """What a reader knows about its input before the first frame, for the writer and the progress bar."""

    path: Path
    width: int
    height: int
    frames: int | None
    rate: Fraction | None = None
    time_base: Fraction | None = None
    colour: Colour | None = None
    rotation: int = 0
    copy_streams: list = field(default_factory=list)


def is_video_path(path: Path) -> bool:
    """Video files are anything not an image, a folder or a glob."""
    return not (path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir() or glob.has_magic(str(path))
                or path.suffix == "")


def _image_paths(spec: Path) -> list[Path]:
    if spec.is_dir():
        try:
            paths = sorted(p for p in spec.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as e:
            raise MediaError(f"{spec}: folder not readable ({e.strerror or e})") from None
    else:
        paths = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
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


class Reader:
    """Frames of a video file, or of a folder or glob of images, in order. Use as a context manager.

    Opening reads up to the first frame, so that a missing, damaged or frameless input fails before any output
    exists, and `source` (size, timing, colour, rotation) is known from the start."""

    def __init__(self, spec: Path) -> None:
        self.spec = Path(spec)
        self.container = None
        if not self.spec.exists() and not glob.has_magic(str(spec)):
            raise MediaError(f"{spec}: no such file or folder")
        if is_video_path(self.spec):
            self._items = self._open_video()
        else:
            self.paths = _image_paths(self.spec)
            self._items = self._images()
        self._head = []
        try:
            for item in self._items:
                self._head.append(item)
                if isinstance(item, Frame):
                    break
            else:
                raise MediaError(f"{self.spec}: the video has no frames")
        except BaseException:
            self.close()
            raise
        first = self._head[-1]
        self.source.height, self.source.width = first.rgb.shape[:2]

    def _open_video(self) -> Iterator[Frame | av.Packet]:
        if not os.access(self.spec, os.R_OK):
            raise MediaError(f"{self.spec}: not readable (permission denied)")
        try:
            self.container = av.open(str(self.spec), "r")
        except av.FFmpegError as e:
            raise MediaError(f"{self.spec}: not a readable video ({e.strerror or e})") from None
        if not self.container.streams.video:
            self.close()
            raise MediaError(f"{self.spec}: has no video (no video stream, or one without frames)")
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        context = stream.codec_context
        copy = [s for s in self.container.streams if s is not stream and s.type in ("audio", "subtitle", "data")]
        # AVI keeps no presentation timestamps (frames with B-frames come out labelled in decode order): its
        # frames are numbered at the constant rate instead
        numbered = "avi" in self.container.format.name.split(",")
        self.source = Source(self.spec, context.width, context.height, stream.frames or None,
                             stream.average_rate or stream.guessed_rate, None if numbered else stream.time_base,
                             Colour.of(context, context.height), copy_streams=copy)
        return self._decode(stream)

    def _decode(self, stream) -> Iterator[Frame | av.Packet]:
        colour, count = self.source.colour, 0
        try:
            for packet in self.container.demux(stream, *self.source.copy_streams):
                if packet.stream is not stream:
                    if packet.dts is not None:
                        yield packet
                    continue
                for frame in packet.decode():
                    if count == 0:
                        self.source.rotation = int(frame.rotation or 0)
                    count += 1
                    rgb = frame.reformat(format="rgb24", src_colorspace=_MATRICES[colour.matrix],
                                         src_color_range=colour.range, interpolation=_DECODE).to_ndarray()
                    yield Frame(rgb, frame.pts if self.source.time_base is not None else None)
        except av.FFmpegError as e:
            raise MediaError(f"{self.spec}: damaged video after {count} frames ({e.strerror or e})") from None

    def _images(self) -> Iterator[Frame]:
        size = None
        for path in self.paths:
            rgb = read_image(path)
            if size is None:
                size = rgb.shape[:2]
                self.source = Source(self.spec, size[1], size[0], len(self.paths))
            elif rgb.shape[:2] != size:
                raise MediaError(f"{path}: is {rgb.shape[0]}x{rgb.shape[1]} but the first image is "
                                 f"{size[0]}x{size[1]}; all images of a sequence must have one size")
            yield Frame(rgb, name=path.name)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

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


def codec_for(path: Path, encoding: Encoding) -> str:
    """The encoder for an output file: the one asked for, else what its container holds and browsers play."""
    return encoding.codec or ("libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264")


def check_codec(name: str) -> None:
    """Refuse an encoder this PyAV build does not have, naming some it does."""
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        have = [c for c in ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4") if c in av.codecs_available]
        raise MediaError(f"encoder {name!r} is not available in this PyAV build; available: {', '.join(have)}") \
            from None


class Writer:
    """Writes RGB frames to a video file or an image folder. Use `open_atomic` to get one."""

    def __init__(self, path: Path, source: Source, encoding: Encoding, width: int) -> None:
        self.path, self.source, self.encoding = path, source, encoding
        self.width, self.height = width, source.height
        self.count = 0
        self.container = None
        if not is_video_path(path):
            path.mkdir()
            return
        codec = codec_for(path, encoding)
        check_codec(codec)
        try:
            self.container = av.open(str(path), "w")
        except av.FFmpegError as e:
            raise MediaError(f"{path}: cannot write this kind of file ({e.strerror or e})") from None
        rate = source.rate or encoding.fps
        stream = self.container.add_stream(codec, rate=rate)
        # AVI stores one frame per tick of a constant rate, so there frames are numbered; elsewhere the input's
        # timestamps are kept (variable rates included), and the encoder works in the input's time base too, so
        # that no timestamp is rounded to the frame rate
        self.numbered = path.suffix.lower() == ".avi" or source.time_base is None
        self.time_base = 1 / Fraction(rate) if self.numbered else source.time_base
        stream.time_base = stream.codec_context.time_base = self.time_base
        subsampled = encoding.pix_fmt.startswith(("yuv420", "yuv422", "nv12"))
        self.pad = (self.height % 2 if subsampled else 0, self.width % 2 if subsampled else 0)
        stream.width, stream.height = self.width + self.pad[1], self.height + self.pad[0]
        stream.pix_fmt = encoding.pix_fmt
        colour = self.colour = source.colour or Colour.default(self.height)
        context = stream.codec_context
        context.colorspace, context.color_range = colour.matrix, colour.range
        context.color_primaries, context.color_trc = colour.primaries, colour.trc
        options = {}
        if encoding.crf is not None:
            options["crf"] = str(encoding.crf)
            if codec == "libvpx-vp9":
                options.update(b="0", **{"row-mt": "1"})  # constant quality, rows in parallel
        if encoding.preset is not None and codec in ("libx264", "libx265", "libsvtav1"):
            options["preset"] = str(encoding.preset)
        if codec == "libx265":
            options["x265-params"] = "log-level=error"  # x265 reports every setting on stderr otherwise
        stream.options = options
        if source.rotation:
            stream.set_display_rotation(source.rotation)
        self.stream = stream
        self.copies = {s.index: self.container.add_stream_from_template(s) for s in source.copy_streams}
        # Write the header now: the muxer may change a stream's time base there (mp4 wants 1/10000 or finer),
        # and every packet must be encoded after that, or the first ones are stamped in the old one.
        self.container.start_encoding()

    def write(self, rgb: np.ndarray, pts: int | None = None, name: str | None = None) -> None:
        """Add one frame (HxWx3 RGB uint8) with its timestamp (None: the next one at the output rate)."""
        if self.container is None:
            out = self.path / (name if name else f"frame_{self.count:06d}.png")
            if not cv2.imwrite(str(out.with_suffix(".png")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise MediaError(f"{out}: could not be written")
            self.count += 1
            return
        if any(self.pad):
            rgb = np.pad(rgb, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format=self.encoding.pix_fmt, dst_colorspace=_MATRICES[self.colour.matrix],
            dst_color_range=self.colour.range, interpolation=_ENCODE)
        frame.pts = self.count if self.numbered or pts is None else pts
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def copy(self, packet: av.Packet) -> None:
        """Mux a packet of a copied stream (audio, subtitles) untouched."""
        if self.container is not None and packet.stream.index in self.copies:
            packet.stream = self.copies[packet.stream.index]
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            self.container.close()


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
            try:
                writer.container.close()
            except av.FFmpegError:
                pass
        if (tmp / "replaced").exists() and not path.exists():  # interrupted between the two renames
            os.replace(tmp / "replaced", path)
        shutil.rmtree(tmp, ignore_errors=True)
