"""Small real media files for the tests, and the facts read back from them."""

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from strcnn_sdk.video import Reader


SUBTITLE = "Hello, world"


def make_video(path: Path, frames: int = 8, size=(48, 64), rate=Fraction(25), pts=None, rotation=0,
               audio=False, seed=0, subtitle: str | None = None, timecode=False, aspect=None, trc=None) -> np.ndarray:
    """A small H.264 test clip of smooth random pictures; returns the RGB frames written. Optionally with AAC
    audio, a text subtitle stream of codec `subtitle` (subrip, mov_text) holding SUBTITLE, a timecode data
    stream (MOV/MP4), a sample aspect ratio and a colour transfer tag."""
    rng = np.random.default_rng(seed)
    clip = np.stack([cv2.resize(rng.integers(0, 256, (6, 8, 3), np.uint8), size[::-1], interpolation=cv2.INTER_CUBIC)
                     for _ in range(frames)])
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate, options={"crf": "10"})
        s.width, s.height, s.pix_fmt = size[1], size[0], "yuv444p" if size[0] % 2 or size[1] % 2 else "yuv420p"
        if pts is not None:
            s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        if timecode:
            s.metadata["timecode"] = "01:00:00:00"
        if aspect is not None:
            s.codec_context.sample_aspect_ratio = aspect
        if trc is not None:
            s.codec_context.color_trc = trc
        a = c.add_stream("aac", rate=16000, layout="mono") if audio else None
        t = c.add_mux_stream(subtitle) if subtitle else None
        if t is not None:
            t.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(clip):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = pts[i] if pts is not None else i
            if pts is not None:
                f.time_base = Fraction(1, 1000)
            c.mux(s.encode(f))
        if a is not None:
            for start in range(0, int(16000 * frames / rate), 1024):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, start
                c.mux(a.encode(af))
            c.mux(a.encode(None))
        if t is not None:
            text = SUBTITLE.encode()
            sub = av.Packet(len(text).to_bytes(2, "big") + text if subtitle == "mov_text" else text)
            sub.pts, sub.dts, sub.duration, sub.time_base, sub.stream = 0, 0, 200, Fraction(1, 1000), t
            c.mux(sub)
        c.mux(s.encode(None))
    return clip


def frames_of(path: Path) -> np.ndarray:
    with Reader(path) as r:
        return np.stack([item.rgb for item in r if hasattr(item, "rgb")])


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = [f.pts * v.time_base for f in c.decode(v)]
        c.seek(0)
        return {"frames": len(pts), "size": (v.codec_context.height, v.codec_context.width),
                "rate": v.average_rate, "pts": pts, "types": sorted(s.type for s in c.streams),
                "colour": (v.codec_context.colorspace, v.codec_context.color_range)}
