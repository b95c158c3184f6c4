"""Write rendered frames in the three real on-disk formats (Cityscapes gtFine, GTSDB FullIJCNN2013,
Mapillary Vistas v1.2), mapping the internal world classes to each dataset's label ids.

Encodings follow ``shared/specs/datasets.md``: Cityscapes labelIds 8-bit 'L', instanceIds 16-bit,
colour RGBA; GTSDB binary P6 PPM with a ``gt.txt`` of inclusive boxes and 16-bit per-pixel true
masks (``2000 + classId``); Vistas JPEG images with 8-bit palette ('P') label PNGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from multiseg.demo.builder import NUM_WORLD_CLASSES, WC
from multiseg.demo.render import Frame
from multiseg.labels import (
    CITYSCAPES_LABELS,
    CITYSCAPES_NAME_TO_ID,
    GTSDB_CLASSES,
    VISTAS_V12_LABELS,
    vistas_v12_config,
)

#: World class -> Cityscapes label name (lane markings, crosswalks and manholes are road, as in gtFine).
CITYSCAPES_OF_WORLD: dict[WC, str] = {
    WC.UNLABELED: "unlabeled",
    WC.SKY: "sky",
    WC.BUILDING: "building",
    WC.WALL: "wall",
    WC.FENCE: "fence",
    WC.VEGETATION: "vegetation",
    WC.TERRAIN: "terrain",
    WC.ROAD: "road",
    WC.LANE_MARKING: "road",
    WC.CROSSWALK_PLAIN: "road",
    WC.CROSSWALK_ZEBRA: "road",
    WC.SIDEWALK: "sidewalk",
    WC.CURB: "sidewalk",
    WC.MANHOLE: "road",
    WC.POLE: "pole",
    WC.STREET_LIGHT: "pole",
    WC.TRAFFIC_LIGHT: "traffic light",
    WC.TRAFFIC_SIGN: "traffic sign",
    WC.PERSON: "person",
    WC.BICYCLIST: "rider",
    WC.MOTORCYCLIST: "rider",
    WC.CAR: "car",
    WC.TRUCK: "truck",
    WC.BUS: "bus",
    WC.ON_RAILS: "train",
    WC.BICYCLE: "bicycle",
    WC.MOTORCYCLE: "motorcycle",
    WC.EGO_VEHICLE: "ego vehicle",
}

#: World class -> Vistas v1.2 label name.
VISTAS_OF_WORLD: dict[WC, str] = {
    WC.UNLABELED: "void--unlabeled",
    WC.SKY: "nature--sky",
    WC.BUILDING: "construction--structure--building",
    WC.WALL: "construction--barrier--wall",
    WC.FENCE: "construction--barrier--fence",
    WC.VEGETATION: "nature--vegetation",
    WC.TERRAIN: "nature--terrain",
    WC.ROAD: "construction--flat--road",
    WC.LANE_MARKING: "marking--general",
    WC.CROSSWALK_PLAIN: "construction--flat--crosswalk-plain",
    WC.CROSSWALK_ZEBRA: "marking--crosswalk-zebra",
    WC.SIDEWALK: "construction--flat--sidewalk",
    WC.CURB: "construction--barrier--curb",
    WC.MANHOLE: "object--manhole",
    WC.POLE: "object--support--pole",
    WC.STREET_LIGHT: "object--street-light",
    WC.TRAFFIC_LIGHT: "object--traffic-light",
    WC.TRAFFIC_SIGN: "object--traffic-sign--front",
    WC.PERSON: "human--person",
    WC.BICYCLIST: "human--rider--bicyclist",
    WC.MOTORCYCLIST: "human--rider--motorcyclist",
    WC.CAR: "object--vehicle--car",
    WC.TRUCK: "object--vehicle--truck",
    WC.BUS: "object--vehicle--bus",
    WC.ON_RAILS: "object--vehicle--on-rails",
    WC.BICYCLE: "object--vehicle--bicycle",
    WC.MOTORCYCLE: "object--vehicle--motorcycle",
    WC.EGO_VEHICLE: "void--ego-vehicle",
}

GTSDB_MASK_OFFSET = 2000


def cityscapes_lut() -> np.ndarray:
    """World class -> Cityscapes label id (uint8)."""
    return np.array(
        [CITYSCAPES_NAME_TO_ID[CITYSCAPES_OF_WORLD[WC(c)]] for c in range(NUM_WORLD_CLASSES)], np.uint8
    )


def vistas_lut() -> np.ndarray:
    """World class -> Vistas v1.2 index (uint8)."""
    index = {lab.name: i for i, lab in enumerate(VISTAS_V12_LABELS)}
    return np.array([index[VISTAS_OF_WORLD[WC(c)]] for c in range(NUM_WORLD_CLASSES)], np.uint8)


def _cityscapes_color_lut() -> np.ndarray:
    lut = np.zeros((256, 4), np.uint8)
    lut[:, 3] = 255
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0:
            lut[lab.id, :3] = lab.color
    return lut


_CS_LUT = cityscapes_lut()
_CS_COLOR = _cityscapes_color_lut()
_CS_INSTANCE_IDS = frozenset(lab.id for lab in CITYSCAPES_LABELS if lab.has_instances and lab.id >= 0)
_VISTAS_LUT = vistas_lut()


def _imwrite(path: Path, image: np.ndarray, params: tuple[int, ...] = ()) -> None:
    """cv2.imwrite that raises instead of returning False."""
    if not cv2.imwrite(str(path), image, list(params)):
        raise OSError(f"could not write {path}")


def cityscapes_instance_ids(label_ids: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """The instanceIds image: ``labelId*1000 + k`` on instance classes (k counts per class), else labelId."""
    out = label_ids.astype(np.uint16)
    for lid in np.unique(label_ids):
        if int(lid) not in _CS_INSTANCE_IDS:
            continue
        sel = label_ids == lid
        keys, k = np.unique(objects[sel], return_inverse=True)
        out[sel] = int(lid) * 1000 + k.reshape(-1).astype(np.uint16)
    return out


def write_cityscapes_frame(root: Path, split: str, city: str, stem: str, frame: Frame) -> None:
    """leftImg8bit PNG plus gtFine labelIds / instanceIds / color PNGs for one frame."""
    img_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    label_ids = _CS_LUT[frame.world]
    _imwrite(img_dir / f"{stem}_leftImg8bit.png", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    _imwrite(gt_dir / f"{stem}_gtFine_labelIds.png", label_ids)
    _imwrite(gt_dir / f"{stem}_gtFine_instanceIds.png", cityscapes_instance_ids(label_ids, frame.objects))
    _imwrite(gt_dir / f"{stem}_gtFine_color.png", cv2.cvtColor(_CS_COLOR[label_ids], cv2.COLOR_RGBA2BGRA))


def sign_boxes(frame: Frame) -> list[tuple[int, int, int, int, int]]:
    """(left, top, right, bottom, classId) per visible sign: the tight inclusive box of its own pixels."""
    out = []
    for k, class_id in enumerate(frame.sign_classes, start=1):
        ys, xs = np.nonzero(frame.signs == k)
        if len(xs):
            out.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), class_id))
    return out


def write_gtsdb_frame(root: Path, index: int, mask_path: Path, frame: Frame) -> list[str]:
    """``NNNNN.ppm`` (binary P6) and its true mask; returns the frame's ``gt.txt`` lines."""
    name = f"{index:05d}.ppm"
    (root / "FullIJCNN2013").mkdir(parents=True, exist_ok=True)
    _imwrite(
        root / "FullIJCNN2013" / name, cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), (cv2.IMWRITE_PXM_BINARY, 1)
    )
    classes = np.zeros(len(frame.sign_classes) + 1, np.uint16)
    classes[1:] = np.asarray(frame.sign_classes, np.uint16) + GTSDB_MASK_OFFSET
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    _imwrite(mask_path, classes[frame.signs])
    return [
        f"{name};{left};{top};{right};{bottom};{cid}" for left, top, right, bottom, cid in sign_boxes(frame)
    ]


def write_gtsdb_meta(root: Path, lines: list[str], n_frames: int, n_train: int) -> None:
    """``gt.txt`` (sorted by file, LF, no header) and a short ``ReadMe.txt``."""
    folder = root / "FullIJCNN2013"
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(lines, key=lambda line: line.split(";", 1)[0])
    (folder / "gt.txt").write_bytes("".join(f"{line}\n" for line in ordered).encode("ascii"))
    names = "\n".join(f"{c.id} = {c.name} ({c.category})" for c in GTSDB_CLASSES)
    readme = (
        "multiseg demo world: a procedurally generated look-alike of the German Traffic Sign Detection\n"
        "Benchmark (GTSDB, FullIJCNN2013). Synthetic street scenes; not real data.\n\n"
        f"Images: {n_frames} binary PPM files 00000.ppm - {n_frames - 1:05d}.ppm.\n"
        f"Split: 00000 - {n_train - 1:05d} train, {n_train:05d} - {n_frames - 1:05d} test "
        "(as the official 600/300).\n\n"
        "gt.txt holds one line per traffic sign, no header:\n"
        "#ImgNo#.ppm;#leftCol#;##topRow#;#rightCol#;#bottomRow#;#ClassID#\n"
        "Columns and rows are 0-based; right and bottom are inclusive. Images without a sign are absent.\n"
        "True per-pixel sign masks (never for training) are in ../true_masks/gtFine/{train,test}/"
        "NNNNN_labelIds.png: 16-bit, 0 = no sign, 2000 + ClassID on the sign's own pixels; test file k "
        "is image n_train + k.\n\n"
        f"Classes:\n{names}\n"
    )
    (folder / "ReadMe.txt").write_bytes(readme.encode("ascii"))


def vistas_palette() -> list[int]:
    """The 256-entry flat RGB palette of the v1.2 label PNGs (config colours, then zeros)."""
    flat = [v for lab in VISTAS_V12_LABELS for v in lab.color]
    return flat + [0] * (768 - len(flat))


_VISTAS_PALETTE = vistas_palette()


def write_vistas_frame(root: Path, split: str, key: str, frame: Frame, quality: int) -> None:
    """``images/<key>.jpg`` and ``v1.2/labels/<key>.png`` (mode 'P', pixel = v1.2 class index).

    The labels sit in the combined release's ``v1.2/labels`` folder; the loader also reads ``labels/``.
    """
    img_dir, lab_dir = root / split / "images", root / split / "v1.2" / "labels"
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    _imwrite(
        img_dir / f"{key}.jpg",
        cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
        (cv2.IMWRITE_JPEG_QUALITY, quality),
    )
    label = Image.fromarray(_VISTAS_LUT[frame.world])
    label.putpalette(_VISTAS_PALETTE)
    label.save(lab_dir / f"{key}.png", optimize=False, compress_level=6)


def write_vistas_config(root: Path) -> None:
    """``config.json``: the v1.2 label table of :func:`multiseg.labels.vistas_v12_config`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(vistas_v12_config(), indent=2) + "\n", encoding="utf-8")
