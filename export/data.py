"""Training data: blurry/sharp video clips rendered from still images with the paper's Eq. (1), and a loader
for real paired datasets in the GoPro layout.

Rendering a clip: a high-frame-rate sharp sequence X_s is made by warping a source image along a smooth random
camera trajectory (translation, rotation, zoom; near-static stretches and fast swings) with independently
moving foreground objects pasted from other images. Blurry frame n averages the tau sub-frames
X_{nT} .. X_{nT+tau-1} in linear light (sRGB gamma undone, averaged, re-applied), gets sensor noise and is
quantized to 8 bits; the sharp target is the centre sub-frame X_{nT + floor(tau/2)} (paper Section 3).

    python -m export.data --heldout DIR    # write the frozen held-out clips in the GoPro layout
    python -m export.data --sample examples/sample.mp4    # the README's sample clip
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from strcnn_sdk.evaluation import find_clips
from strcnn_sdk.video import read_image

# Still images shipped inside scikit-image's wheel (no download). The held-out ones never reach training.
TRAIN_IMAGES = ("astronaut", "chelsea", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
                "colorwheel", "logo", "brick", "grass", "camera", "moon", "coins", "page", "text", "clock", "cell")
HELDOUT_IMAGES = ("coffee", "rocket", "gravel")
HELDOUT_SEED = 20261126


@dataclass(frozen=True)
class BlurSettings:
    """What a rendered clip may contain; frozen for the held-out set before any training."""

    taus: tuple[int, ...] = (7, 9, 11, 13, 15)  # sub-frames averaged per blurry frame (shutter), paper Sec. 3
    speed: tuple[float, float] = (0.0, 1.6)  # camera translation, pixels per sub-frame (fast swings reach max)
    rotation: float = 0.004  # max camera rotation speed, radians per sub-frame
    zoom: float = 0.003  # max camera zoom speed, log-scale per sub-frame
    static_share: float = 0.2  # share of trajectory stretches that are near-static
    objects: tuple[int, int] = (0, 2)  # independently moving foreground objects per clip
    object_speed: float = 2.0  # max object speed, pixels per sub-frame
    noise: tuple[float, float] = (0.0, 0.012)  # sensor noise sigma, in [0, 1] units at full intensity


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


@functools.cache
def source_image(name: str) -> np.ndarray:
    """A scikit-image sample image as linear-light float32 RGB [H, W, 3]."""
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return srgb_to_linear(image[..., :3].astype(np.float32) / 255.0)


def _trajectory(rng: np.random.Generator, length: int, max_speed: float, static_share: float,
                dims: int) -> np.ndarray:
    """A smooth random path [length, dims] from velocities interpolated between random knots; a knot is
    near-static with probability `static_share`, otherwise its speed is uniform up to `max_speed`."""
    knots = max(2, length // 24 + 2)
    direction = rng.normal(size=(knots, dims))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-9
    speed = rng.uniform(0, max_speed, size=(knots, 1)) * (rng.random((knots, 1)) >= static_share)
    at = np.linspace(0, length - 1, knots)
    velocity = np.stack([np.interp(np.arange(length), at, (direction * speed)[:, d]) for d in range(dims)], 1)
    return np.cumsum(velocity, axis=0) - velocity[0]


def _affine(center_src, center_out, angle: float, scale: float, shift) -> np.ndarray:
    """Output-to-source affine map (for cv2's WARP_INVERSE_MAP): rotate and scale about the output centre."""
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    a = np.array([[c, -s], [s, c]])
    t = np.asarray(center_src) + np.asarray(shift) - a @ np.asarray(center_out)
    return np.hstack([a, t[:, None]]).astype(np.float32)


def render_clip(rng: np.random.Generator, background: str, others: tuple[str, ...], frames: int,
                size: tuple[int, int], settings: BlurSettings = BlurSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Render `frames` blurry/sharp pairs of `size` (H, W) as uint8 RGB arrays [frames, H, W, 3]."""
    height, width = size
    tau = int(rng.choice(settings.taus))
    period = int(rng.integers(tau, 2 * tau))
    length = frames * period + tau
    image = source_image(background)
    # Fit the view inside the image at 1-2x magnification so that the trajectory stays mostly inside it.
    fit = min(image.shape[0] / height, image.shape[1] / width)
    scale0 = fit * rng.uniform(0.3, 0.7)
    center = np.array([image.shape[1] / 2, image.shape[0] / 2]) + rng.uniform(-0.2, 0.2, 2) * image.shape[1::-1]
    shift = _trajectory(rng, length, settings.speed[1] * scale0, settings.static_share, 2)
    angle = _trajectory(rng, length, settings.rotation, settings.static_share, 1)[:, 0] + rng.uniform(-0.3, 0.3)
    zoom = np.exp(_trajectory(rng, length, settings.zoom, settings.static_share, 1)[:, 0])
    out_center = ((width - 1) / 2, (height - 1) / 2)

    objects = []
    for _ in range(int(rng.integers(settings.objects[0], settings.objects[1] + 1))):
        texture = source_image(others[int(rng.integers(len(others)))])
        radius = rng.uniform(0.12, 0.3) * min(height, width)
        mask = np.zeros(texture.shape[:2], np.float32)
        tex_center = (texture.shape[1] / 2, texture.shape[0] / 2)
        cv2.ellipse(mask, (int(tex_center[0]), int(tex_center[1])),
                    (int(radius), int(radius * rng.uniform(0.5, 1.0))), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
        start = rng.uniform(0.2, 0.8, 2) * (width, height)
        path = _trajectory(rng, length, settings.object_speed, settings.static_share, 2)
        objects.append((texture, mask, tex_center, start, path))

    def subframe(s: int) -> np.ndarray:
        m = _affine(center, out_center, angle[s], scale0 / zoom[s], shift[s])
        frame = cv2.warpAffine(image, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        for texture, mask, tex_center, start, path in objects:
            m = _affine(tex_center, start + path[s], 0.0, 1.0, (0, 0))
            warp = dict(dsize=(width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                        borderMode=cv2.BORDER_CONSTANT)
            alpha = cv2.warpAffine(mask, m, **warp)[..., None]
            frame = frame * (1 - alpha) + cv2.warpAffine(texture, m, **warp) * alpha
        return frame

    sigma = rng.uniform(*settings.noise)
    blurry, sharp = [], []
    for n in range(frames):
        stack = [subframe(n * period + j) for j in range(tau)]
        mean = linear_to_srgb(np.mean(stack, axis=0))
        noisy = mean + rng.normal(size=mean.shape).astype(np.float32) * sigma * np.sqrt(mean + 1e-3)
        blurry.append(np.clip(noisy * 255 + 0.5, 0, 255).astype(np.uint8))
        sharp.append(np.clip(linear_to_srgb(stack[tau // 2]) * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.stack(blurry), np.stack(sharp)


def heldout_clips(count: int = 8, frames: int = 12, size: tuple[int, int] = (160, 224)
                  ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The frozen held-out set: (name, blurry, sharp) clips from held-out images, the same on every call."""
    rng = np.random.default_rng(HELDOUT_SEED)
    clips = []
    for i in range(count):
        background = HELDOUT_IMAGES[i % len(HELDOUT_IMAGES)]
        blurry, sharp = render_clip(rng, background, HELDOUT_IMAGES, frames, size)
        clips.append((f"heldout{i:02d}_{background}", blurry, sharp))
    return clips


def synthetic_batches(seed: int, batch: int, frames: int, size: tuple[int, int]):
    """Endless batches (blurry, sharp) float32 [batch, frames, 3, H, W] in [0, 1] from the training images."""
    rng = np.random.default_rng(seed)
    while True:
        pairs = [render_clip(rng, TRAIN_IMAGES[int(rng.integers(len(TRAIN_IMAGES)))], TRAIN_IMAGES, frames, size)
                 for _ in range(batch)]
        yield tuple(np.stack([p[k] for p in pairs]).transpose(0, 1, 4, 2, 3).astype(np.float32) / 255
                    for k in (0, 1))


def write_gopro_layout(root: Path, clips: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Write clips as ROOT/NAME/blur/000000.png and ROOT/NAME/sharp/000000.png (the GoPro dataset's layout)."""
    for name, blurry, sharp in clips:
        for kind, frames in (("blur", blurry), ("sharp", sharp)):
            folder = Path(root) / name / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(frames):
                cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def gopro_batches(root: Path, seed: int, batch: int, frames: int, size: tuple[int, int]):
    """Endless batches like `synthetic_batches`, cropped from random runs of a real paired dataset."""
    sequences = [s for s in find_clips(root) if len(s[1]) >= frames]
    if not sequences:
        raise ValueError(f"{root}: no sequence has the {frames} frames a training clip needs")
    rng = np.random.default_rng(seed)
    height, width = size
    while True:
        out = []
        for _ in range(batch):
            _, blur, sharp = sequences[int(rng.integers(len(sequences)))]
            start = int(rng.integers(len(blur) - frames + 1))
            clip = [np.stack([read_image(p) for p in paths[start:start + frames]]) for paths in (blur, sharp)]
            y = int(rng.integers(clip[0].shape[1] - height + 1))
            x = int(rng.integers(clip[0].shape[2] - width + 1))
            out.append([c[:, y:y + height, x:x + width] for c in clip])
        yield tuple(np.stack([o[k] for o in out]).transpose(0, 1, 4, 2, 3).astype(np.float32) / 255
                    for k in (0, 1))


def write_sample(path: Path, frames: int = 60, fps: int = 25, size: tuple[int, int] = (270, 480)) -> None:
    """A short blurry clip rendered from scikit-image's "astronaut" (a NASA photograph in the public domain),
    H.264 in mp4 tagged BT.601, with a two-tone AAC audio track: the README's sample."""
    import av

    settings = BlurSettings(speed=(0.0, 1.2), static_share=0.1, objects=(1, 1))
    blurry, _ = render_clip(np.random.default_rng(7), "astronaut", ("coffee", "chelsea"), frames, size, settings)
    rate = 48_000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "slow"})
        video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
        context = video.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 6  # BT.601 (SMPTE 170M)
        context.color_range = 1  # limited
        audio = container.add_stream("aac", rate=rate, layout="mono")
        for i, rgb in enumerate(blurry):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="itu601", dst_color_range=1)
            frame.pts = i
            container.mux(video.encode(frame))
        t = np.arange(rate * frames // fps) / rate
        tone = (0.2 * np.sin(2 * np.pi * np.where(t % 0.5 < 0.25, 440, 660) * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = rate, start
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--heldout", type=Path, help="folder to write the held-out clips into")
    task.add_argument("--sample", type=Path, help="write the sample clip (.mp4) here")
    args = parser.parse_args(argv)
    if args.sample:
        write_sample(args.sample)
        print(f"wrote {args.sample} ({args.sample.stat().st_size / 1e6:.2f} MB)")
        return
    clips = heldout_clips()
    write_gopro_layout(args.heldout, clips)
    print(f"wrote {len(clips)} held-out clips of {len(clips[0][1])} frames to {args.heldout}")


if __name__ == "__main__":
    main()
