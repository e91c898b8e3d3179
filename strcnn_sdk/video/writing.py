"""Writing: RGB frames into a video file, a folder of PNGs or standard output (`Writer`), with the streams carried
over beside them, the record of what made the output, and a file written atomically (`open_output`)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from .colour import ENCODE, MATRICES, Colour, bits
from .encoding import GIF, PIPE_FORMAT, Encoding, codec_for, encoder_options
from .errors import MediaError, MediaWarning, OutputClosed, close_quietly
from .locating import is_video_path, locate
from .reading import Source
from .streams import extra_stream

_RECORD_TAG = "comment"  # the one free-text tag that MP4, MOV, Matroska, WebM and AVI all keep


# Muxer options for standard output, so that a reader gets each part of the stream within 0.2 s: MP4 streams only
# fragmented (an empty index up front, then self-contained fragments at each keyframe and every 0.2 s; negative
# composition offsets keep the timestamps when audio starts before the video), Matroska in short clusters
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets",
               "frag_duration": "200000"}
_STREAMING = {"mp4": _FRAGMENTED, "mov": _FRAGMENTED, "matroska": {"cluster_time_limit": "200"},
              "webm": {"cluster_time_limit": "200"}}


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
        codec = None if folder else codec_for("-" if piped else path, encoding)  # checked: `check_encoding`
        self.pix_fmt = "pal8" if codec == GIF else encoding.pix_fmt
        # float frames (from input of more than 8 bits) are written with 16 bits where the output keeps them
        self.deep = folder or bits(self.pix_fmt) > 8
        if folder:
            path.mkdir()
            return
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
            for template in source.copy_streams if codec != GIF else ():  # a GIF is pictures alone
                extra = extra_stream(self.container, template, encoding.audio)
                if extra is not None:
                    self.extras[template.index] = extra
            # Write the header now: the muxer may change a stream's time base there (mp4 wants 1/10000 or
            # finer), and every packet must be encoded after that, or the first ones are stamped in the old one.
            self.container.start_encoding()
        except BaseException:
            close_quietly(self.container)
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
        subsampled = self.pix_fmt.startswith(("yuv420", "yuv422", "nv12"))
        self.pad = (self.height % 2 if subsampled else 0, self.width % 2 if subsampled else 0)
        stream.width, stream.height = self.width + self.pad[1], self.height + self.pad[0]
        if any(self.pad):
            warnings.warn(f"{self.width}x{self.height} frames become {stream.width}x{stream.height} (the last "
                          f"{'row' if self.pad[0] else 'column'}{' and column' if all(self.pad) else ''} repeated): "
                          f"{self.pix_fmt} needs even sides; --pix-fmt yuv444p or a folder of PNGs keeps the size",
                          MediaWarning, stacklevel=2)
        stream.pix_fmt = self.pix_fmt
        # GIF: each frame's own palette, made from it (FFmpeg's palettegen, then paletteuse with it)
        self.palette = _Palette(self.width, self.height, self.time_base) if codec == GIF else None
        colour = self.colour = source.colour or Colour.default(self.height)
        context = stream.codec_context
        context.colorspace, context.color_range = colour.matrix, colour.range
        context.color_primaries, context.color_trc = colour.primaries, colour.trc
        if source.aspect is not None:
            context.sample_aspect_ratio = source.aspect
        stream.options = encoder_options(codec, encoding)
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
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24")
        if self.palette is None:
            frame = frame.reformat(format=self.pix_fmt, dst_colorspace=MATRICES[self.colour.matrix],
                                   dst_color_range=self.colour.range, interpolation=ENCODE)
            _clear_padding(frame)
        frame.pts = self.count if self.numbered or pts is None else pts
        frame.time_base = self.time_base
        for out in self.palette.frames(frame) if self.palette is not None else [frame]:
            self.container.mux(self.stream.encode(out))
        self.count += 1

    def copy(self, packet: av.Packet) -> None:
        """Carry a packet of another stream (audio, subtitles, data) into the output: copied, encoded anew or
        rewritten, as decided when the output was opened."""
        if self.container is not None and packet.stream.index in self.extras:
            self.extras[packet.stream.index].write(packet)

    def close(self) -> None:
        if self.container is not None:
            for frame in self.palette.frames(None) if self.palette is not None else ():
                self.container.mux(self.stream.encode(frame))
            self.container.mux(self.stream.encode(None))
            for extra in self.extras.values():
                extra.close()
            self.container.close()


class _Palette:
    """GIF frames: FFmpeg's palettegen makes each frame's own 256 colours, and paletteuse maps the frame onto them,
    so that a clip keeps its colours from scene to scene. The dither is ordered (Bayer, scale 5): it stays put
    from frame to frame where error diffusion shimmers, and on 30 frames of the sample clip it was 14% smaller
    and 2.3 dB closer to the frames than FFmpeg's default (sierra2_4a)."""

    def __init__(self, width: int, height: int, time_base: Fraction) -> None:
        self.graph = av.filter.Graph()
        source = self.graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
        split, make, use = (self.graph.add("split"), self.graph.add("palettegen", "stats_mode=single"),
                            self.graph.add("paletteuse", "new=1:dither=bayer:bayer_scale=5"))
        source.link_to(split)
        split.link_to(make, 0, 0)
        split.link_to(use, 1, 0)
        make.link_to(use, 0, 1)
        use.link_to(self.graph.add("buffersink"))
        self.graph.configure()

    def frames(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        """Push a frame (None: the end) and take the paletted frames that are ready."""
        self.graph.push(frame)
        ready = []
        while True:
            try:
                ready.append(self.graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return ready


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
            close_quietly(writer.container)


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
            close_quietly(writer.container)
        if (tmp / "replaced").exists() and not path.exists():  # interrupted between the two renames
            os.replace(tmp / "replaced", path)
        shutil.rmtree(tmp, ignore_errors=True)
