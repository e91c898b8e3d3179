"""Training data: blurry/sharp video clips rendered from sharp photographs with the paper's Eq. (1), at camera
scale, and a loader for real paired datasets in the GoPro layout.

A scene lives on a camera frame of 1280x720 (``CANVAS``). A source photograph is brought to camera resolution
with an area filter (at most 1280 px wide, never enlarged) and viewed at 0.8 to 1.25 source pixels per output
pixel, so that a training patch is a crop of what a 720p render of the same scene and seed shows. The camera
follows a smooth random trajectory (translation, roll, zoom), in some clips with hand tremor on top, whose blur
length per frame, in output pixels, spans still frames to fast pans; the shutter is open for 10% to 100% of the
frame interval; foreground objects cut from other photographs, at the background's scale,
move on their own. Blurry frame n averages the tau sub-frames X_{nT} .. X_{nT+tau-1} in linear light, scaled
by the clip's exposure (bright areas saturate at the sensor's clip), gets Poisson-Gaussian sensor noise in
linear light, then the sRGB curve and 8-bit quantization; the sharp target is the centre sub-frame
X_{nT + floor(tau/2)} with the same exposure (paper Section 3; noise and saturation as in RSBlur, Rim et al.,
ECCV 2022). Some clips flash or jump in exposure, so that the recurrent state learns such input too.

Every random choice of a clip is drawn first, as a `Scene`; two renderers turn scenes into pixels: `render`
(NumPy and OpenCV, one clip) and `render_torch` (a whole batch per ``grid_sample`` call, on the training device).

    python -m export.data --test DIR        # write the frozen test set in the GoPro layout (`strcnn eval DIR`)
    python -m export.data --validation DIR  # the validation set (needs the gathered photographs)
    python -m export.data --natural DIR     # the second validation set: natural photographs (needs them too)
    python -m export.data --sample examples/sample.mp4    # the README's sample clip
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import math
import tomllib
import warnings
from importlib import metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .photos import read_manifest, to_camera_scale

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

CANVAS = (720, 1280)  # the camera frame a scene is defined on, (H, W) in output pixels
MILD_PX = 3.0  # blur under this many output pixels counts as mild

# The test set: colour photographs shipped inside wheels, so that every clone renders it alike; never trained on.
TEST_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower", "grace_hopper")
EVAL_SIZE = (240, 320)
EVAL_FRAMES = 8
TEST_SEED = 20261127
VALIDATION_SEED = 20261128
NATURAL_SEED = 20261206


@dataclass(frozen=True)
class BlurSettings:
    """What a rendered clip may contain. The defaults are the training mix; `CATEGORIES` narrows them."""

    taus: tuple[int, ...] = (7, 9, 11, 13, 15)  # sub-frames averaged per blurry frame (shutter), paper Sec. 3
    scale: tuple[float, float] = (0.8, 1.25)  # source pixels per output pixel
    still_share: float = 0.05  # clips whose camera does not move (0.1 with mild 0.2 measured worse: TRAINING.md)
    mild_share: float = 0.05  # clips whose camera blur is under MILD_PX
    blur: tuple[float, float] = (MILD_PX, 40.0)  # the other clips: blur per frame, output px (log-uniform)
    rotation: float = 0.0006  # roll speed at the largest blur, radians per sub-frame (on average)
    zoom: float = 0.0004  # zoom speed at the largest blur, log-scale per sub-frame (on average)
    objects: tuple[int, int] = (0, 2)  # independently moving foreground objects per clip
    object_size: tuple[float, float] = (0.05, 0.2)  # object radius, share of the canvas height
    clean_share: float = 0.25  # clips without sensor noise
    shot_noise: tuple[float, float] = (1e-4, 3e-3)  # Poisson part, variance a * x in linear light (log-uniform)
    read_noise: tuple[float, float] = (3e-4, 3e-3)  # Gaussian part, sigma in linear light (log-uniform)
    exposure: tuple[float, float] = (0.7, 1.8)  # linear gain before the sensor's clip (log-uniform)
    flash_share: float = 0.1  # clips with flashes or an exposure jump
    # clips whose camera trembles: 2 to 4 sinusoids per axis (periods of 2 to 10 frames) on a slower drift
    tremor_share: float = 0.5
    # clips whose shutter is open 10% to 50% of the frame interval; the others 50% to 100%
    short_shutter_share: float = 0.45
    # clips whose whole scene is soft (out of focus, or a soft photograph): a Gaussian of sigma `defocus` output px
    # on every sub-frame, target included, so that softness alone is not taken for motion blur
    defocus_share: float = 0.0
    defocus: tuple[float, float] = (0.5, 2.5)


TRAIN_SETTINGS = BlurSettings()


def _frozen(**settings) -> BlurSettings:
    """Evaluation settings: no flashes, so that the figures measure deblurring; no tremor and the shutter open 50%
    to 100% of the frame interval, as when the sets were frozen (their pixels are pinned by tests)."""
    return BlurSettings(flash_share=0.0, tremor_share=0.0, short_shutter_share=0.0, **settings)


VALIDATION_KINDS = ("still", "mild", "moderate", "mild", "strong", "moderate")  # each validation photograph's clips
NATURAL_KINDS = ("moderate", "strong")  # each natural photograph's clips: how far the gain carries

# The evaluation sets' categories, from sharp to strongly blurred.
CATEGORIES = {
    "still": _frozen(still_share=1.0, objects=(0, 0), clean_share=1.0, exposure=(1.0, 1.0)),
    "mild": _frozen(still_share=0.0, mild_share=1.0),
    "moderate": _frozen(still_share=0.0, mild_share=0.0, blur=(MILD_PX, 15.0)),
    "strong": _frozen(still_share=0.0, mild_share=0.0, blur=(15.0, 40.0)),
}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def _wheel_image(name: str) -> np.ndarray:
    """A colour photograph shipped inside a wheel (scikit-image, scikit-learn, matplotlib), RGB uint8."""
    if name == "motorcycle":
        import skimage.data

        return skimage.data.stereo_motorcycle()[0]
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return matplotlib.image.imread(f)
    import skimage.data

    return getattr(skimage.data, name)()


class Sources:
    """Sharp source photographs in linear light at camera scale, loaded once, by name or from files."""

    def __init__(self, names: Sequence[str], paths: Sequence[Path | None]) -> None:
        if not names:
            raise ValueError("no source photographs")
        self.names, self.paths = list(names), list(paths)
        self._atlases: dict = {}

    @classmethod
    def wheel(cls, names: Sequence[str] = TEST_IMAGES) -> Sources:
        return cls(names, [None] * len(names))

    @classmethod
    def folder(cls, folder: Path, split: str | None = None, collection: int | None = None) -> Sources:
        """The photographs of a gathered folder's manifest (one split, or all; of the collections up to
        `collection`, or all); a folder without a manifest gives all its images."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder; gather the photographs with `python -m export.photos "
                                    f"{folder}`")
        if (folder / "manifest.json").is_file():
            files = [e["file"] for e in read_manifest(folder) if split in (None, e["split"])
                     and (collection is None or e.get("collection", 1) <= collection)]
        else:
            files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise ValueError(f"{folder}: no photographs{f' in the {split} split' if split else ''}; a folder gathered "
                             f"before that split existed needs gathering again: python -m export.photos {folder}")
        return cls([Path(f).stem for f in files], [folder / f for f in files])

    def __len__(self) -> int:
        return len(self.names)

    def __add__(self, other: Sources) -> Sources:
        return Sources(self.names + other.names, self.paths + other.paths)

    @functools.cache
    def image(self, i: int) -> np.ndarray:
        """Source i as linear-light float32 RGB [H, W, 3] at camera scale."""
        path = self.paths[i]
        if path is None:
            rgb = np.asarray(_wheel_image(self.names[i]))
        else:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{path}: not an image OpenCV can read")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return srgb_to_linear(to_camera_scale(rgb[..., :3]).astype(np.float32) / 255.0)

    def atlas(self, device) -> tuple:
        """Every source in one `_atlas` on `device`, kept there: what `render_torch` samples."""
        key = str(device)
        if key not in self._atlases:
            self._atlases[key] = _atlas([self.image(i) for i in range(len(self))], device)
        return self._atlases[key]


@dataclass
class Scene:
    """Every random choice of one clip, drawn before any pixel is rendered."""

    source: int
    size: tuple[int, int]  # output (H, W)
    tau: int  # sub-frames the shutter is open
    period: int  # sub-frames from one frame to the next
    tremor: bool  # the camera trembles
    background: np.ndarray  # [frames, tau, 2, 3] output pixel -> source pixel affine maps
    sprites: list[np.ndarray]  # foreground objects: linear RGB + alpha [h, w, 4]
    sprite_maps: list[np.ndarray]  # [frames, tau, 2, 3] output pixel -> sprite pixel
    gains: np.ndarray  # [frames] linear exposure per frame
    shot: float
    read: float
    blur_px: float  # mean travel of the window's centre during one exposure, output px
    origin: tuple[int, int]  # the window's top-left corner on the canvas, (y, x)
    defocus: float = 0.0  # sigma of the scene's own softness, output px (0: as sharp as its photograph)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(math.log(low), math.log(high))))


def _path(rng: np.random.Generator, length: int, dims: int) -> np.ndarray:
    """A smooth random path [length, dims] around zero, as a hand shakes: random positions at knots about 24
    sub-frames apart, eased from one to the next (the motion slows to a stop where it turns)."""
    knots = max(2, length // 24 + 2)
    at = np.linspace(0, length - 1, knots)
    positions = rng.normal(size=(knots, dims))
    segment = np.minimum(np.searchsorted(at, np.arange(length), side="right") - 1, knots - 2)
    t = (np.arange(length) - at[segment]) / (at[segment + 1] - at[segment])
    ease = (t * t * (3 - 2 * t))[:, None]
    path = positions[segment] * (1 - ease) + positions[segment + 1] * ease
    return path - path.mean(axis=0)


def _tremor(rng: np.random.Generator, length: int, dims: int, period: int) -> np.ndarray:
    """Hand tremor [length, dims]: per axis 2 to 4 sinusoids with periods of 2 to 10 frames (`period` sub-frames
    each), random amplitudes and phases."""
    t = np.arange(length)
    out = np.zeros((length, dims))
    for axis in range(dims):
        for _ in range(int(rng.integers(2, 5))):
            cycle = rng.uniform(2.0, 10.0) * period
            out[:, axis] += rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * t / cycle + rng.uniform(0, 2 * math.pi))
    return out


def _travel(path: np.ndarray, exposed: np.ndarray, blur: float) -> np.ndarray:
    """`path` scaled so that it travels `blur` pixels during an exposure (sub-frames `exposed` [frames, tau]),
    on average over the frames."""
    travel = np.linalg.norm(path[exposed[:, -1]] - path[exposed[:, 0]], axis=-1).mean()
    return path * (blur / travel) if travel > 0 else path * 0


def _blur_length(rng: np.random.Generator, settings: BlurSettings) -> float:
    """Blur per frame in output pixels: still, mild (under MILD_PX) or log-uniform in `settings.blur`."""
    u = rng.random()
    if u < settings.still_share:
        return 0.0
    if u < settings.still_share + settings.mild_share:
        return float(rng.uniform(0.0, MILD_PX))
    return _log_uniform(rng, *settings.blur)


def _affine(rotation: float, scale: float, centre_out, centre_src) -> np.ndarray:
    """Output-to-source map: rotate and scale about `centre_out` (output px), which lands on `centre_src`."""
    c, s = math.cos(rotation) * scale, math.sin(rotation) * scale
    a = np.array([[c, -s], [s, c]])
    t = np.asarray(centre_src) - a @ np.asarray(centre_out)
    return np.hstack([a, t[:, None]]).astype(np.float32)


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored back into range(n) (the picture reflected at its edges, as OpenCV's BORDER_REFLECT)."""
    index = np.abs(index + 0.5).astype(int) % (2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


def _sprite(rng: np.random.Generator, image: np.ndarray, radius: float) -> np.ndarray:
    """An object cut from `image`: a soft-edged ellipse of `radius` source pixels, as RGB + alpha [h, w, 4]."""
    half = int(math.ceil(radius)) + 2
    rows, cols = (_mirror(np.arange(-half, half + 1) + int(rng.integers(0, n)), n) for n in image.shape[:2])
    patch = image[rows[:, None], cols[None, :]]
    ratio, angle = rng.uniform(0.5, 1.0), rng.uniform(0, math.pi)
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    u = (x * math.cos(angle) + y * math.sin(angle)) / radius
    v = (-x * math.sin(angle) + y * math.cos(angle)) / (radius * ratio)
    alpha = np.clip((1 - np.sqrt(u * u + v * v)) * radius * ratio + 0.5, 0, 1)  # a one-pixel soft edge
    return np.concatenate([patch, alpha[..., None]], 2).astype(np.float32)


def _exposures(rng: np.random.Generator, frames: int, settings: BlurSettings) -> np.ndarray:
    """Per-frame linear gain: the clip's exposure, with flashes or one exposure jump in some clips."""
    gains = np.full(frames, _log_uniform(rng, *settings.exposure) if settings.exposure[0] < settings.exposure[1]
                    else settings.exposure[0], np.float32)
    if rng.random() < settings.flash_share:
        if rng.random() < 0.5:
            gains[int(rng.integers(1, max(2, frames))):] *= 2 ** rng.uniform(-1.5, 1.5)
        else:
            flash = rng.random(frames) < 0.3
            gains[flash] *= np.where(rng.random(frames) < 0.7, rng.uniform(2, 8, frames),
                                     rng.uniform(0.02, 0.2, frames))[flash]
    return gains


def plan(rng: np.random.Generator, sources: Sources, frames: int, size: tuple[int, int],
         settings: BlurSettings = TRAIN_SETTINGS, source: int | None = None) -> Scene:
    """Draw one clip's scene. The draws do not depend on `size`: a smaller window of the same seed is a crop
    of the larger one (of the whole canvas when `size` is `CANVAS`), placed around the scene's focus point."""
    height, width = size
    source = int(rng.integers(len(sources))) if source is None else source
    image = sources.image(source)
    scale = float(rng.uniform(*settings.scale))
    view = np.minimum(CANVAS, np.array(image.shape[:2]) / scale)  # the canvas part the photograph covers
    canvas_centre = np.array(CANVAS, np.float64)[::-1] / 2  # (x, y)
    focus = canvas_centre + (rng.random(2) - 0.5) * np.maximum(view[::-1] - 64, 0)
    room = np.maximum(np.array(image.shape[1::-1]) - np.array(CANVAS[::-1]) * scale, 0)
    source_centre = np.array(image.shape[1::-1]) / 2 + (rng.random(2) - 0.5) * room
    tau = int(rng.choice(settings.taus))
    period = int(rng.integers(tau, 2 * tau))  # open 50% to 100% of the frame interval
    # (each further draw only where its share is not 0, so that the frozen evaluation sets draw as they always did)
    if settings.short_shutter_share and rng.random() < settings.short_shutter_share:
        period = int(round(tau / rng.uniform(0.1, 0.5)))  # open 10% to 50%
    tremor = bool(settings.tremor_share) and rng.random() < settings.tremor_share
    length = frames * period + tau
    blur = _blur_length(rng, settings)
    exposed = np.array([[n * period + j for j in range(tau)] for n in range(frames)])

    def shake(dims: int) -> np.ndarray:
        """The camera's path along `dims` axes: an eased random walk, with tremor on top of a slower share of it."""
        path = _path(rng, length, dims)
        return path * rng.uniform(0.2, 1.0) + _tremor(rng, length, dims, period) if tremor else path

    shift = _travel(shake(2), exposed, blur)
    share = (blur / settings.blur[1]) ** 2  # roll and zoom grow with the shake; mild shake barely rolls
    roll = _travel(shake(1), exposed, settings.rotation * tau * share)[:, 0] + rng.uniform(-0.3, 0.3)
    zoom = np.exp(_travel(_path(rng, length, 1), exposed, settings.zoom * tau * share)[:, 0])

    sprites, paths = [], []
    for _ in range(int(rng.integers(settings.objects[0], settings.objects[1] + 1))):
        radius = rng.uniform(*settings.object_size) * CANVAS[0]
        other = int(rng.integers(len(sources)))
        sprites.append(_sprite(rng, sources.image(other), radius * scale))
        start = focus + rng.uniform(-1.2, 1.2, 2) * radius
        paths.append(start + _travel(_path(rng, length, 2), exposed, _blur_length(rng, settings)))
    gains = _exposures(rng, frames, settings)
    noisy = rng.random() >= settings.clean_share
    shot = _log_uniform(rng, *settings.shot_noise) if noisy else 0.0
    read = _log_uniform(rng, *settings.read_noise) if noisy else 0.0
    soft = bool(settings.defocus_share) and rng.random() < settings.defocus_share
    defocus = _log_uniform(rng, *settings.defocus) if soft else 0.0

    # the window: centred on the focus point, kept inside the covered view where it fits
    limit = np.maximum(view[::-1] - np.array([width, height]), 0) / 2
    centre = canvas_centre + np.clip(focus - canvas_centre, -limit, limit)
    origin = np.round(centre - np.array([width, height]) / 2)
    background = np.stack([[_affine(roll[s], scale / zoom[s], canvas_centre - origin, source_centre + shift[s] * scale)
                            for s in row] for row in exposed])
    sprite_maps = [np.stack([[_affine(0.0, scale, path[s] - origin, (np.array(sprite.shape[1::-1]) - 1) / 2)
                              for s in row] for row in exposed]) for sprite, path in zip(sprites, paths)]
    centre_out = np.array([width / 2, height / 2, 1.0])
    ends = np.stack([background[:, 0] @ centre_out, background[:, -1] @ centre_out])
    blur_px = float(np.linalg.norm(ends[1] - ends[0], axis=-1).mean() / scale)
    return Scene(source, (height, width), tau, period, tremor, background, sprites, sprite_maps, gains, shot, read, blur_px,
                 (int(origin[1]), int(origin[0])), defocus)


def _expose(linear, gains, shot: float, read: float, noise):
    """Sensor: exposure gain, Poisson-Gaussian noise in linear light, the clip at full well; works on NumPy
    arrays and torch tensors alike (`gains`, `shot` and `read` broadcast over the pixels)."""
    x = linear * gains
    if noise is not None:  # adds exactly 0 where shot and read are 0
        x = x + (x.clip(0, None) * shot + read * read) ** 0.5 * noise
    return x.clip(0, 1)


def _quantize(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def render(scene: Scene, sources: Sources, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render a scene with OpenCV: (blurry, sharp) uint8 RGB [frames, H, W, 3]; `rng` draws the noise."""
    height, width = scene.size
    image = sources.image(scene.source)
    warp = dict(dsize=(width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)

    def subframe(n: int, j: int) -> np.ndarray:
        frame = cv2.warpAffine(image, scene.background[n, j], borderMode=cv2.BORDER_REFLECT, **warp)
        for sprite, maps in zip(scene.sprites, scene.sprite_maps):
            rgba = cv2.warpAffine(sprite, maps[n, j], borderMode=cv2.BORDER_CONSTANT, **warp)
            frame = frame * (1 - rgba[..., 3:]) + rgba[..., :3] * rgba[..., 3:]
        return frame

    mean, centre = [], []
    for n in range(len(scene.gains)):
        stack = [subframe(n, j) for j in range(scene.tau)]
        mean.append(np.mean(stack, axis=0, dtype=np.float64).astype(np.float32))  # exact for a still scene
        centre.append(stack[scene.tau // 2])
    if scene.defocus:  # linear: blurring the mean of the sub-frames is the mean of the blurred sub-frames
        mean, centre = ([cv2.GaussianBlur(x, (0, 0), scene.defocus) for x in xs] for xs in (mean, centre))
    gains = scene.gains[:, None, None, None]
    noise = rng.normal(size=(len(gains), height, width, 3)).astype(np.float32)
    blurry = _expose(np.stack(mean), gains, scene.shot, scene.read, noise)
    sharp = _expose(np.stack(centre), gains, 0.0, 0.0, None)
    return _quantize(linear_to_srgb(blurry)), _quantize(linear_to_srgb(sharp))


def _atlas(pictures: Sequence[np.ndarray], device, gap: int = 1) -> tuple:
    """Pictures [h, w, C] laid out in columns about as tall as the layout is wide, `gap` zero pixels around each,
    on a torch device: the layout [1, C, H, W], and each picture's top-left corner (x, y) and size (w, h) as
    [pictures, 2] float32 tensors. One tensor serves one ``grid_sample`` call for many pictures, and a sample
    just outside a picture reads the gap's zeros."""
    import torch

    limit = max(max(p.shape[0] for p in pictures), int(math.sqrt(sum(p.shape[0] * p.shape[1] for p in pictures))))
    corners, x, y, column, height = [], gap, gap, 0, 0
    for picture in pictures:
        h, w = picture.shape[:2]
        if y > gap and y + h > limit:  # the next column
            x, y, column = x + column + gap, gap, 0
        corners.append((x, y))
        y, column, height = y + h + gap, max(column, w), max(height, y + h + gap)
    atlas = np.zeros((height, x + column + gap, pictures[0].shape[2]), np.float32)
    for picture, (x, y) in zip(pictures, corners):
        atlas[y:y + picture.shape[0], x:x + picture.shape[1]] = picture
    sizes = [picture.shape[1::-1] for picture in pictures]
    return (torch.from_numpy(atlas).permute(2, 0, 1)[None].to(device),
            *(torch.tensor(np.array(v), dtype=torch.float32, device=device) for v in (corners, sizes)))


def _reflect(coordinate, size):
    """Pixel coordinates mirrored at a picture's edges into [0, size - 1], as ``grid_sample``'s reflection
    padding does (align_corners=False), for a picture inside an atlas; in place."""
    import torch

    # t = coordinate + 0.5 folded into [0, 2 size); the mirrored coordinate is size - |t - size| - 0.5
    folded = torch.remainder(coordinate.add_(0.5), 2 * size).sub_(size).abs_()
    return torch.minimum(folded.neg_().add_(size - 0.5), size - 1).clamp_(min=0)


def render_torch(scenes: Sequence[Scene], sources: Sources, device, generator, budget: int | None = None) -> tuple:
    """Render same-sized scenes on a torch device with ``grid_sample``: (blurry, sharp) float32
    [N, frames, 3, H, W] in [0, 1], on 8-bit levels; `generator` (a torch.Generator on `device`) draws the noise.
    Scenes may differ in photograph, tau and objects. They are rendered in runs of up to `budget` sub-frame
    pixels, each run with one call for the backgrounds and one per layer of objects: by default a whole
    training batch on a GPU, where every call costs a launch, and about 1M on a CPU, where a run's
    coordinates then stay in the cache (docs/TRAINING.md has the timings)."""
    import torch

    if budget is None:
        budget = 2**28 if torch.device(device).type == "cuda" else 2**20
    runs, run, used = [], [], 0
    for scene in scenes:
        cost = len(scene.gains) * scene.tau * scene.size[0] * scene.size[1]
        if run and used + cost > budget:
            runs.append(run)
            run, used = [], 0
        run.append(scene)
        used += cost
    parts = [_render_run(run, sources, device, generator) for run in [*runs, run]]
    return tuple(torch.cat([part[k] for part in parts]) for k in (0, 1))


def _render_run(scenes: Sequence[Scene], sources: Sources, device, generator) -> tuple:
    """`render_torch` of scenes in one call per layer: the backgrounds from the sources' atlas, then each layer
    of objects from an atlas of the scenes' objects; every sub-frame of every scene is one slice of a call."""
    import torch
    from torch.nn.functional import grid_sample

    height, width = scenes[0].size
    frames = len(scenes[0].gains)
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in (width, height)]  # x, y
    taus = np.array([scene.tau for scene in scenes])
    starts = np.concatenate([[0], np.cumsum(frames * taus)])  # scene n's sub-frames: starts[n] to starts[n + 1]

    def sample(atlas, corners, sizes, maps: list[np.ndarray], reflect: bool):
        """Pictures of `atlas` at their `corners` with `sizes` ([len(maps), 2] each, (x, y)), each at its maps
        [frames, tau, 2, 3] -> sub-frames [sum of frames * tau, C, H, W]; outside a picture its edge mirrored
        (`reflect`) or zeros (the atlas' gap)."""
        per_map = torch.tensor([m.shape[0] * m.shape[1] for m in maps], device=device)
        m = torch.from_numpy(np.concatenate([m.reshape(-1, 2, 3) for m in maps])).to(device)[:, :, :, None, None]
        size, corner = (v.repeat_interleave(per_map, 0)[:, :, None, None] for v in (sizes, corners))
        whole = atlas.shape[:1:-1]  # (W, H)
        grid = []
        for axis in (0, 1):  # output pixel (x, y) -> picture pixel -> the atlas' [-1, 1]
            u = m[:, axis, 0] * axes[0] + (m[:, axis, 1] * axes[1][:, None] + m[:, axis, 2])
            u = _reflect(u, size[:, axis]) if reflect else torch.minimum(u.clamp_(min=-1), size[:, axis])
            grid.append(u.add_(corner[:, axis] + 0.5).mul_(2 / whole[axis]).sub_(1))
        out = grid_sample(atlas, torch.stack(grid, -1).reshape(1, -1, width, 2), mode="bilinear",
                          padding_mode="zeros", align_corners=False)
        return out.reshape(atlas.shape[1], len(m), height, width).transpose(0, 1)

    atlas, corners, sizes = sources.atlas(device)
    index = torch.tensor([scene.source for scene in scenes], device=device)
    sub = sample(atlas, corners[index], sizes[index], [s.background for s in scenes], True)
    sprites = [(n, k) for n, s in enumerate(scenes) for k in range(len(s.sprites))]
    if sprites:
        layout, spots, sides = _atlas([scenes[n].sprites[k] for n, k in sprites], device)
        for layer in range(max(k for _, k in sprites) + 1):  # in order: a later object covers an earlier one
            mine = [i for i, (_, k) in enumerate(sprites) if k == layer]
            holders = [sprites[i][0] for i in mine]
            rgba = sample(layout, spots[mine], sides[mine], [scenes[n].sprite_maps[layer] for n in holders], False)
            at = torch.from_numpy(np.concatenate([np.arange(starts[n], starts[n + 1]) for n in holders])).to(device)
            held = sub[at]
            sub[at] = held * (1 - rgba[:, 3:]) + rgba[:, :3] * rgba[:, 3:]
    frame_of = torch.from_numpy(np.repeat(np.arange(len(scenes) * frames), np.repeat(taus, frames))).to(device)
    mean = torch.zeros(len(scenes) * frames, *sub.shape[1:], device=device).index_add_(0, frame_of, sub)
    mean = mean / torch.from_numpy(np.repeat(taus, frames)).to(device)[:, None, None, None]
    centres = (starts[:-1, None] + np.arange(frames) * taus[:, None] + taus[:, None] // 2).reshape(-1)
    centre = sub[torch.from_numpy(centres).to(device)]

    for n, scene in enumerate(scenes):
        if scene.defocus:
            at = slice(n * frames, (n + 1) * frames)
            mean[at], centre[at] = _gaussian_torch(mean[at], scene.defocus), _gaussian_torch(centre[at], scene.defocus)

    def per_frame(values: np.ndarray):
        return torch.from_numpy(np.asarray(values, np.float32).reshape(-1)).to(device)[:, None, None, None]

    gains = per_frame(np.stack([s.gains for s in scenes]))
    shot, read = (per_frame(np.repeat([getattr(s, k) for s in scenes], frames)) for k in ("shot", "read"))
    noise = torch.randn(mean.shape, device=device, generator=generator)
    blurry = _expose(mean, gains, shot, read, noise)
    sharp = _expose(centre, gains, 0.0, 0.0, None)
    return tuple(_to_8bit(x).reshape(len(scenes), frames, *x.shape[1:]) for x in (blurry, sharp))


def _gaussian_torch(x, sigma: float):
    """OpenCV's ``GaussianBlur(x, (0, 0), sigma)`` of float images [N, C, H, W] in torch: the same kernel (size
    8 sigma + 1, odd) and border (mirrored without repeating the edge)."""
    import torch
    from torch.nn.functional import conv2d, pad

    size = int(round(sigma * 8 + 1)) | 1
    kernel = torch.from_numpy(cv2.getGaussianKernel(size, sigma, cv2.CV_32F)[:, 0]).to(x.device)
    channels, r = x.shape[1], size // 2
    x = pad(x, (r, r, r, r), mode="reflect")
    x = conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, size), groups=channels)
    return conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, size, 1), groups=channels)


def _to_8bit(linear):
    """Linear light -> sRGB on 8-bit levels, as float in [0, 1] (torch)."""
    import torch

    x = linear.clamp(0, 1)
    srgb = torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=1e-12) ** (1 / 2.4) - 0.055)
    return torch.floor(srgb * 255 + 0.5).clamp(0, 255) / 255


def render_clip(rng: np.random.Generator, sources: Sources, frames: int, size: tuple[int, int],
                settings: BlurSettings = TRAIN_SETTINGS, source: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Plan and render one clip with OpenCV: (blurry, sharp) uint8 RGB [frames, H, W, 3]."""
    return render(plan(rng, sources, frames, size, settings, source), sources, rng)


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of training batch `step`: a batch depends only on (seed, step), so a resumed run draws the
    same data as an uninterrupted one."""
    return np.random.default_rng([seed, step])


def plan_batch(sources: Sources, seed: int, step: int, batch: int, frames: int, size: tuple[int, int],
               settings: BlurSettings = TRAIN_SETTINGS) -> tuple[list[Scene], np.random.Generator]:
    """The scenes of training batch `step` and the generator that renders them: the CPU half of a batch,
    which DataLoader workers can draw while the GPU renders and trains."""
    rng = batch_rng(seed, step)
    return [plan(rng, sources, frames, size, settings) for _ in range(batch)], rng


def render_batch(scenes: Sequence[Scene], rng: np.random.Generator, sources: Sources, renderer: str = "numpy",
                 device="cpu") -> tuple:
    """Planned scenes as float32 tensors (blurry, sharp) [batch, frames, 3, H, W] in [0, 1]."""
    import torch

    if renderer == "torch":
        generator = torch.Generator(device=device)
        generator.manual_seed(int(rng.integers(2**62)))
        return render_torch(scenes, sources, device, generator)
    pairs = [render(scene, sources, rng) for scene in scenes]
    return tuple(torch.from_numpy(np.stack([p[k] for p in pairs]).transpose(0, 1, 4, 2, 3).astype(np.float32) / 255)
                 for k in (0, 1))


def synthetic_batch(sources: Sources, seed: int, step: int, batch: int, frames: int, size: tuple[int, int],
                    renderer: str = "numpy", device="cpu", settings: BlurSettings = TRAIN_SETTINGS):
    """Training batch `step` as float32 tensors (blurry, sharp) [batch, frames, 3, H, W] in [0, 1]."""
    return render_batch(*plan_batch(sources, seed, step, batch, frames, size, settings), sources, renderer, device)


def eval_clips(sources: Sources, seed: int, clips_per_source: int, kinds: Sequence[str] = tuple(CATEGORIES)
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A frozen evaluation set: (name, blurry, sharp) clips of EVAL_FRAMES x EVAL_SIZE, cycling through `kinds`
    (keys of `CATEGORIES`; the name starts with the category), the same on every call and, under the pinned
    rendering path (`rendering_pins`), in every clone."""
    warn_unpinned_rendering()
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(len(sources) * clips_per_source):
        kind = kinds[i % len(kinds)]
        source = i // clips_per_source
        blurry, sharp = render_clip(rng, sources, EVAL_FRAMES, EVAL_SIZE, CATEGORIES[kind], source)
        clips.append((f"{kind}_{sources.names[source]}_{i:02d}", blurry, sharp))
    return clips


def rendering_pins() -> dict[str, str]:
    """The releases pinned in pyproject's ``render`` extra: those that the frozen pixels were rendered with."""
    extra = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["render"]
    return dict(requirement.split("==") for requirement in extra)


def rendering_mismatches() -> list[str]:
    """Each library of the rendering path installed at another release than its pin, as 'name installed (pinned
    X)'. Any one can move pixels of the evaluation sets and the training batches."""
    found = []
    for name, pinned in rendering_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            found.append(f"{name} {installed} (pinned {pinned})")
    return found


@functools.cache
def warn_unpinned_rendering() -> None:
    """Warn once when the rendering path is not the pinned one: the figures are then not measured on the frozen
    sets, and a resumed run's batches differ from an uninterrupted one's."""
    if found := rendering_mismatches():
        warnings.warn(f"rendering with {', '.join(found)}: evaluation figures and training batches differ from the "
                      "frozen ones; install the project with its `export` extra", stacklevel=2)


@functools.cache
def test_clips() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The test set: 24 clips from the photographs inside wheels. Only reported, never used to select."""
    return eval_clips(Sources.wheel(TEST_IMAGES), TEST_SEED, 3)


def clips_sha256(clips: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """The SHA-256 of an evaluation set's names and pixels: what says that two sets are the same, bit for bit."""
    digest = hashlib.sha256()
    for name, blurry, sharp in clips:
        digest.update(name.encode())
        digest.update(blurry.tobytes())
        digest.update(sharp.tobytes())
    return digest.hexdigest()


@functools.cache
def validation_clips(photos: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The validation set: `VALIDATION_KINDS` from each held-out gathered photograph (two mild clips each: where
    a model does harm)."""
    return eval_clips(Sources.folder(photos, "validation"), VALIDATION_SEED, len(VALIDATION_KINDS), VALIDATION_KINDS)


def natural_clips(photos: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The second validation set: a moderate and a strong clip of each photograph of the natural split
    (photographs of the world's textures that no run trains on). It reports how the gain carries to natural
    footage; checkpoints are chosen on `validation_clips`."""
    return eval_clips(Sources.folder(photos, "natural"), NATURAL_SEED, len(NATURAL_KINDS), NATURAL_KINDS)


def write_gopro_layout(root: Path, clips: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Write clips as ROOT/NAME/blur/000000.png and ROOT/NAME/sharp/000000.png (the GoPro dataset's layout)."""
    for name, blurry, sharp in clips:
        for kind, frames in (("blur", blurry), ("sharp", sharp)):
            folder = Path(root) / name / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(frames):
                cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def gopro_batches(root: Path, seed: int, batch: int, frames: int, size: tuple[int, int]) -> Iterator[tuple]:
    """Endless batches like `synthetic_batch`, cropped from random runs of a real paired dataset."""
    import torch

    from strcnn_sdk.evaluation import find_clips
    from strcnn_sdk.video import read_image

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
        yield tuple(torch.from_numpy(np.stack([o[k] for o in out]).transpose(0, 1, 4, 2, 3).astype(np.float32) / 255)
                    for k in (0, 1))


def write_sample(path: Path, frames: int = 60, fps: int = 25, size: tuple[int, int] = (270, 480)) -> None:
    """A short handheld clip rendered at camera scale from scikit-image's "astronaut" (a NASA photograph in the
    public domain), H.264 in mp4 tagged BT.601, with a two-tone AAC audio track: the README's sample."""
    import av

    settings = dataclasses.replace(TRAIN_SETTINGS, still_share=0.0, mild_share=0.0, blur=(10.0, 14.0),
                                   objects=(1, 1), flash_share=0.0, clean_share=1.0, tremor_share=0.0,
                                   short_shutter_share=0.0)
    sources = Sources.wheel(("astronaut", "coffee", "chelsea"))
    blurry, _ = render_clip(np.random.default_rng(7), sources, frames, size, settings, source=0)
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
    task.add_argument("--test", type=Path, help="folder to write the test clips into")
    task.add_argument("--validation", type=Path, help="folder to write the validation clips into")
    task.add_argument("--natural", type=Path, help="folder to write the natural photographs' clips into")
    task.add_argument("--sample", type=Path, help="write the sample clip (.mp4) here")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"),
                        help="the gathered photographs (for --validation and --natural)")
    args = parser.parse_args(argv)
    if args.sample:
        write_sample(args.sample)
        print(f"wrote {args.sample} ({args.sample.stat().st_size / 1e6:.2f} MB)")
        return
    kind = next(k for k in ("test", "validation", "natural") if getattr(args, k))
    folder = getattr(args, kind)
    try:
        clips = test_clips() if kind == "test" else {"validation": validation_clips, "natural": natural_clips}[kind](
            args.photos)
    except (OSError, ValueError) as e:  # the photographs missing, or gathered before the split existed
        raise SystemExit(f"python -m export.data: {e}") from None
    write_gopro_layout(folder, clips)
    print(f"wrote {len(clips)} {kind} clips of {len(clips[0][1])} frames to {folder}")


if __name__ == "__main__":
    main()
