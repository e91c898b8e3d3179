"""``python -m export.photos DIR``: gather the sharp colour photographs that training renders its clips from.

The photographs come from Debian packages (downloaded with ``apt-get download`` and unpacked with ``dpkg -x``, so
the command needs a Debian-like system and the package archive) and, optionally, from sharp frames of videos
(``--video FILE``, e.g. Big Buck Bunny, (c) Blender Foundation, CC BY 3.0). Each is brought to at most 1280 px
wide with an area (anti-aliasing) filter and written as JPEG into DIR (git-ignored: third-party photographs are
never committed), with ``manifest.json`` listing each file's origin, licence, sha256 and split. A few
photographs are held out as the validation set, which selects checkpoints and is never trained on.

    python -m export.photos data/photos --video bigbuckbunny.mp4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MAX_WIDTH = 1280
MAX_BYTES = 20 * 1024 * 1024
JPEG_QUALITY = 95
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Photo:
    package: str
    path: str  # inside the unpacked package
    license: str
    split: str = "train"


_LOMIRI = "usr/share/backgrounds/"
_MATE = "usr/share/backgrounds/mate/nature/"
_PLASMA = "usr/share/wallpapers/{}/contents/images/{}"
_OPENCV = "usr/share/doc/opencv-doc/examples/data/"
_OPENCV_LICENSE = "Apache-2.0 AND BSD-3-Clause (OpenCV sample data)"

# Photographs only: the packages' renders, paintings and motion-blurred pictures (Storm, licenseplate_motion)
# are left out, and of each stereo or sequence pair one image is taken. The validation split holds 11 that no
# run has trained on (a clock, a bird on a bark, a desk, shapes on a light table, books, a chessboard in grey).
PHOTOS = (
    *(Photo("lomiri-wallpapers-16.04", _LOMIRI + name, license, split) for name, license, split in (
        ("Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "validation"),
        ("Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", "train"),
        ("Picture_0B_by_freespace.jpg", "CC-BY-4.0", "train"),
        ("Picture_1A_by_freespace.jpg", "CC-BY-4.0", "train"),
        ("Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "train"),
        ("aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "train"),
        ("free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "train"),
        ("friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "train"),
        ("life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "train"),
        ("picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "train"),
        ("seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "train"),
        ("sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "train"),
        ("greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "validation"))),
    Photo("lomiri-wallpapers-20.04", _LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0", "validation"),
    *(Photo("mate-backgrounds", _MATE + name, "GPL-2+", split) for name, split in (
        ("Aqua.jpg", "train"), ("Blinds.jpg", "train"), ("Dune.jpg", "train"), ("FreshFlower.jpg", "train"),
        ("Garden.jpg", "train"), ("GreenMeadow.jpg", "train"), ("LadyBird.jpg", "train"),
        ("RainDrops.jpg", "validation"), ("TwoWings.jpg", "train"), ("Wood.jpg", "train"),
        ("YellowFlower.jpg", "train"))),
    *(Photo("plasma-workspace-wallpapers", _PLASMA.format(name, size), "GPL-2+", split) for name, size, split in (
        ("BytheWater", "2560x1440.jpg", "train"), ("ColdRipple", "2560x1440.jpg", "train"),
        ("ColorfulCups", "2560x1600.jpg", "validation"), ("EveningGlow", "2560x1440.jpg", "train"),
        ("FallenLeaf", "2560x1440.jpg", "train"), ("Grey", "2560x1440.jpg", "train"),
        ("Kite", "2560x1440.jpg", "train"), ("OneStandsOut", "2560x1440.jpg", "train"),
        ("Path", "2560x1440.jpg", "train"), ("summer_1am", "2560x1440.jpg", "train"))),
    *(Photo("opencv-doc", _OPENCV + name, _OPENCV_LICENSE, split) for name, split in (
        ("aero1.jpg", "train"), ("aloeL.jpg", "train"), ("apple.jpg", "train"), ("baboon.jpg", "train"),
        ("board.jpg", "train"), ("box_in_scene.png", "train"), ("building.jpg", "validation"),
        ("butterfly.jpg", "validation"), ("chicky_512.png", "train"), ("ela_original.jpg", "train"),
        ("fruits.jpg", "train"), ("graf1.png", "train"), ("home.jpg", "train"), ("leuvenA.jpg", "train"),
        ("messi5.jpg", "train"), ("orange.jpg", "train"), ("rubberwhale1.png", "train"), ("smarties.png", "train"),
        ("squirrel_cls.jpg", "train"), ("starry_night.jpg", "train"), ("sudoku.png", "train"),
        ("basketball1.png", "train"), ("stuff.jpg", "validation"), ("pca_test1.jpg", "validation"),
        ("right.jpg", "validation"), ("left01.jpg", "validation"))),
)


def to_camera_scale(image: np.ndarray, max_width: int = MAX_WIDTH) -> np.ndarray:
    """Shrink an image to at most `max_width` px wide with an area filter (no aliasing); never enlarge."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    size = (max_width, max(1, round(height * max_width / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_photo(folder: Path, name: str, bgr: np.ndarray, entry: dict) -> dict:
    """Write one photograph (BGR, as OpenCV reads it) at camera scale as NAME.jpg; returns its manifest entry."""
    path = Path(folder) / f"{name}.jpg"
    image = to_camera_scale(bgr)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"{path}: could not write")
    return {"file": path.name, **entry, "size": [image.shape[1], image.shape[0]], "sha256": sha256(path)}


def write_manifest(folder: Path, entries: list[dict]) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps({"photos": entries}, indent=1) + "\n")


def read_manifest(folder: Path) -> list[dict]:
    """The manifest's entries, each checked against its file's sha256."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; gather the photographs with `python -m export.photos "
                                f"{folder}` or pass a folder of your own images with --images")
    entries = json.loads(manifest.read_text())["photos"]
    for entry in entries:
        if sha256(folder / entry["file"]) != entry["sha256"]:
            raise ValueError(f"{folder / entry['file']}: its sha256 differs from {MANIFEST}; gather again")
    return entries


def sharp_video_frames(path: Path, count: int) -> list[np.ndarray]:
    """The sharpest frame (variance of the Laplacian) of each of `count` equal stretches of a video, BGR."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    chosen = []
    for stretch in np.array_split(np.arange(len(frames)), count):
        sharpness = [cv2.Laplacian(cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for i in stretch]
        chosen.append(frames[stretch[int(np.argmax(sharpness))]])
    return chosen


def gather(folder: Path, videos: list[Path], video_license: str, frames_per_video: int,
           debs: Path | None = None) -> list[dict]:
    """Download and unpack the packages (or use the .deb files in `debs`), then write the photographs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        packages = sorted({p.package for p in PHOTOS})
        if debs is None:
            debs = Path(tmp)
            subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True)
        root = Path(tmp) / "root"
        for package in packages:
            deb = sorted(Path(debs).glob(f"{package}_*.deb"))
            if not deb:
                raise FileNotFoundError(f"{debs}: no .deb of {package}")
            subprocess.run(["dpkg", "-x", str(deb[-1]), str(root)], check=True)
        for photo in PHOTOS:
            bgr = cv2.imread(str(root / photo.path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"{photo.package}: {photo.path} is missing or unreadable")
            name = Path(photo.path).stem if "wallpapers/" not in photo.path else photo.path.split("/")[3]
            entries.append(write_photo(folder, name, bgr, {"origin": f"{photo.package}: /{photo.path}",
                                                            "license": photo.license, "split": photo.split}))
    for video in videos:
        for i, bgr in enumerate(sharp_video_frames(video, frames_per_video)):
            entries.append(write_photo(folder, f"{video.stem}_{i:02d}", bgr, {
                "origin": f"{video.name}, a sharp frame", "license": video_license, "split": "train"}))
    write_manifest(folder, entries)
    total = sum((folder / e["file"]).stat().st_size for e in entries)
    if total > MAX_BYTES:
        raise ValueError(f"{folder}: {total / 2**20:.1f} MiB of photographs, above the {MAX_BYTES / 2**20:.0f} MiB "
                         "that a GPU machine's copy of the tree allows")
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.photos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to write the photographs and manifest.json")
    parser.add_argument("--video", type=Path, action="append", default=[], help="add sharp frames of this video")
    parser.add_argument("--video-license", default="CC-BY-3.0, (c) Blender Foundation (Big Buck Bunny)",
                        help="the licence recorded for --video frames")
    parser.add_argument("--video-frames", type=int, default=8, help="frames taken from each video")
    parser.add_argument("--debs", type=Path, help="use these downloaded .deb files instead of apt-get download")
    args = parser.parse_args(argv)
    entries = gather(args.folder, args.video, args.video_license, args.video_frames, args.debs)
    total = sum((args.folder / e["file"]).stat().st_size for e in entries)
    splits = {s: sum(e["split"] == s for e in entries) for s in ("train", "validation")}
    print(f"wrote {len(entries)} photographs ({splits['train']} train, {splits['validation']} validation), "
          f"{total / 2**20:.1f} MiB, and {MANIFEST} to {args.folder}")


if __name__ == "__main__":
    main()
