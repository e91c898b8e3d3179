"""``python -m export.photos DIR``: gather the sharp colour photographs that training renders its clips from.

The photographs come from Debian packages (downloaded with ``apt-get download`` and unpacked with ``dpkg -x``, so
the command needs a Debian-like system and the package archive) and, optionally, from sharp frames of videos
(``--video FILE``, e.g. Big Buck Bunny, (c) Blender Foundation, CC BY 3.0). Each is brought to at most 1280 px
wide with an area (anti-aliasing) filter and written as JPEG into DIR (git-ignored: third-party photographs are
never committed), with ``manifest.json`` listing each file's origin, licence, sha256, split and collection. A few
photographs are held out as the validation set, which selects checkpoints and is never trained on; the natural
split holds out photographs of the world's textures as a second validation set (`export.data.natural_clips`),
which reports how the gain carries to natural footage.

The photographs come in collections, numbered in the order they joined: 1, the wallpapers, OpenCV's sample images
and the video frames; 2, Endless Sky's landing photographs (coasts, mountains, forests, fields, cities, industry).
A run trains on the collections up to its recipe's ``collection``, so that adding photographs never changes what
a run already under way sees. ``--collection 1`` gathers the first alone (16 MiB, what a GPU machine's copy of the
tree has room for).

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
CARRIED_BYTES = 20 * 1024 * 1024  # the photographs a GPU machine's copy of the tree has room for
# JPEG quality by collection: collection 2's sources are JPEGs of about this quality already, and at 95 its 269
# photographs would take 64 MB for no detail that their sources have
JPEG_QUALITY = {1: 95, 2: 90}
LATEST = max(JPEG_QUALITY)
MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "natural")


@dataclass(frozen=True)
class Photo:
    package: str
    path: str  # inside the unpacked package
    license: str
    split: str = "train"
    collection: int = 1

    @property
    def name(self) -> str:
        """The file's name in the gathered folder, without extension: the wallpaper's folder or the file's stem."""
        return self.path.split("/")[3] if "wallpapers/" in self.path else Path(self.path).stem.removesuffix("@2x")


_LOMIRI = "usr/share/backgrounds/"
_MATE = "usr/share/backgrounds/mate/nature/"
_PLASMA = "usr/share/wallpapers/{}/contents/images/{}"
_OPENCV = "usr/share/doc/opencv-doc/examples/data/"
_OPENCV_LICENSE = "Apache-2.0 AND BSD-3-Clause (OpenCV sample data)"
_LAND = "usr/share/games/endless-sky/plugins/endless-sky-high-dpi/images/land/{}@2x.jpg"
# Endless Sky's landing photographs at 1440x720 (the high-dpi package; the same pictures at 720x360 are in
# endless-sky-data), all but two processed planetary images (nasa8, nasa9), an abstract render (space6) and the
# Moon over the Earth (earthrise). The sets of the two Wikimedia photographers (bwerner, myrabella) are the natural
# split, never trained on.
_LAND_NAMES = """
    badlands0 badlands1 badlands2 badlands3 badlands4 badlands5 badlands6 badlands7 badlands8 badlands9-harro
    beach0 beach1 beach2 beach3 beach4 beach5 beach6 beach7-sfiera beach8-sfiera beach9-sfiera beach10-sfiera
    beach11-harro beach12-harro bwerner0 bwerner1 bwerner2 bwerner3 bwerner4 bwerner5 bwerner6 bwerner7
    bwerner8 canyon0 canyon01 canyon1 canyon02 canyon2 canyon03 canyon3 canyon04 canyon4 canyon05 canyon5
    canyon6 canyon7 canyon8 canyon9 canyon10-harro city0 city1 city2 city3 city4 city5 city6 city7 city8 city9
    city10 city11 city12 city13-sfiera city14-sfiera city15-sfiera city16-sfiera city17-sfiera city18-iridium
    desert0 desert1 desert2 desert3 desert4 desert5 desert6 desert7 desert8-sfiera desert9-sfiera
    desert10-harro dmottl0 dmottl1 dmottl2 dmottl3 dmottl4 dmottl5 dune0 dune1 dune2 dune3 dune4 dune5
    dune6-harro fields0 fields1 fields2 fields3 fields4 fields5 fields6 fields7 fields8 fields9 fields10-sfiera
    fields11-sfiera fields12-sfiera fields13-sfiera fog0 fog1 fog2 fog3 fog4 fog5 fog6 fog7 forest0 forest1
    forest2 forest3 forest4 forest5 hills0 hills1 hills2 hills3 hills4 hills5-sfiera hills6-sfiera hills7-harro
    industrial0-iridium lava0 lava1 lava2 lava3 lava4 lava5 lava6 lava7-sfiera loc0 loc1 loc2 mfield0 mfield1
    mfield2 mfield3 mfield4 mfield5 mountain0 mountain1 mountain2 mountain3 mountain4 mountain5 mountain6
    mountain7 mountain8 mountain9 mountain10-sfiera mountain11-sfiera mountain12-sfiera mountain13-sfiera
    mountain14-sfiera mountain15-sfiera mountain16-striker mountain17-harro mountain18-harro mountain19-harro
    mountain20-harro mountain21-harro mountain22-spfld mountain23-spfld mountain24-spfld mountain25-spfld
    myrabella0 myrabella1 myrabella2 myrabella3 myrabella4 myrabella5 myrabella6 myrabella7 myrabella8 nasa0
    nasa1 nasa2 nasa3 nasa4 nasa5 nasa6 nasa7 sea0 sea1 sea2 sea3 sea4 sea5 sea6 sea7 sea8 sea9 sea10-sfiera
    sea11-sfiera sea12-sfiera sea13-sfiera sea14-sfiera sea15-harro sea16-harro sea17-harro sky0 sky1 sky2 sky3
    sky4 sky5 sky6 sky7 sky8 sky9 snow0 snow1 snow2 snow3 snow4 snow5 snow6 snow7 snow8 snow9 snow10
    snow10-sfiera snow11-sfiera space0 space1 space2 space3 space4 space5 space7 station0 station1 station2
    station3 station4 valley0 valley1 valley2 valley3 valley4 valley5 valley6 valley7 valley8 valley9
    valley10-sfiera valley11-harro valley12-harro valley13-harro valley14-harro valley15-harro water0 water1
    water2 water3 water4 water5 water6 water7 water8 water9 water10-harro water11-harro
""".split()


def _land_license(name: str) -> str:
    """The licence the package's copyright file gives a landing photograph: CC BY-SA 3.0 for the Wikimedia
    photographers', CC BY-SA 4.0 for the contributors' own, public domain for the rest (morgueFile, Unsplash,
    NASA, USGS)."""
    if name.startswith(("bwerner", "myrabella", "dmottl", "mfield")):
        return "CC-BY-SA-3.0"
    if name == "lava5" or name.endswith(("-sfiera", "-striker", "-harro", "-iridium", "-spfld")):
        return "CC-BY-SA-4.0"
    return "public-domain"


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
    *(Photo("endless-sky-high-dpi", _LAND.format(name), _land_license(name),
            "natural" if name.startswith(("bwerner", "myrabella")) else "train", collection=2) for name in _LAND_NAMES),
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
    """Write one photograph (BGR, as OpenCV reads it) at camera scale as NAME.jpg at its collection's quality
    (``entry["collection"]``, 1 if absent); returns its manifest entry."""
    path = Path(folder) / f"{name}.jpg"
    image = to_camera_scale(bgr)
    entry = {"collection": 1, **entry}
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY[entry["collection"]]]):
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
           debs: Path | None = None, collection: int = LATEST) -> list[dict]:
    """Download and unpack the packages (or use the .deb files in `debs`), then write the photographs of the
    collections up to `collection`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photos = [p for p in PHOTOS if p.collection <= collection]
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        packages = sorted({p.package for p in photos})
        if debs is None:
            debs = Path(tmp)
            subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True)
        root = Path(tmp) / "root"
        for package in packages:
            deb = sorted(Path(debs).glob(f"{package}_*.deb"))
            if not deb:
                raise FileNotFoundError(f"{debs}: no .deb of {package}")
            subprocess.run(["dpkg", "-x", str(deb[-1]), str(root)], check=True)
        for photo in photos:
            bgr = cv2.imread(str(root / photo.path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"{photo.package}: {photo.path} is missing or unreadable")
            entries.append(write_photo(folder, photo.name, bgr, {
                "origin": f"{photo.package}: /{photo.path}", "license": photo.license, "split": photo.split,
                "collection": photo.collection}))
    for video in videos:
        for i, bgr in enumerate(sharp_video_frames(video, frames_per_video)):
            entries.append(write_photo(folder, f"{video.stem}_{i:02d}", bgr, {
                "origin": f"{video.name}, a sharp frame", "license": video_license, "split": "train"}))
    write_manifest(folder, entries)
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
    parser.add_argument("--collection", type=int, choices=sorted(JPEG_QUALITY), default=LATEST,
                        help="gather the collections up to this one (default: all)")
    args = parser.parse_args(argv)
    entries = gather(args.folder, args.video, args.video_license, args.video_frames, args.debs, args.collection)
    total = sum((args.folder / e["file"]).stat().st_size for e in entries)
    splits = ", ".join(f"{sum(e['split'] == s for e in entries)} {s}" for s in SPLITS)
    print(f"wrote {len(entries)} photographs ({splits}), {total / 2**20:.1f} MiB, and {MANIFEST} to {args.folder}")
    if total > CARRIED_BYTES:
        print(f"a GPU machine's copy of the tree has room for {CARRIED_BYTES / 2**20:.0f} MiB of photographs: gather "
              "--collection 1 into the folder that travels there")


if __name__ == "__main__":
    main()
