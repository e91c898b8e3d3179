"""The streams beside the video: audio, subtitles and data, copied into the output where its container holds
them, else audio encoded anew and text subtitles rewritten; anything else left out with a `MediaWarning`."""

from __future__ import annotations

import io
import re
import warnings

import av

from .errors import MediaWarning, close_quietly

AUDIO_MODES = ("copy", "encode", "none")  # copy where the output holds the codec (else encode), always encode, drop
# (codec the container must hold, encoder), in order of preference: AAC where it fits, Opus for WebM, MP3 for AVI
_AUDIO_ENCODERS = (("aac", "aac"), ("opus", "libopus"), ("mp3", "libmp3lame"))
_TEXT_SUBTITLES = ("subrip", "srt", "text", "mov_text", "webvtt", "ass", "ssa")
_SUBTITLE_TARGETS = ("subrip", "mov_text", "webvtt")  # Matroska, MP4/MOV, WebM


_ASS_TAGS = re.compile(r"\{[^}]*\}")


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
        close_quietly(probe)


def extra_stream(container, template, audio: str):
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
