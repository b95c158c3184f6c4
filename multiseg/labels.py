"""Label tables of the supported datasets, kept in one place and shared by every stage.

The demo world writes these ids, the readers map them, training and evaluation score against them.

Cityscapes: the 34 label ids of ``cityscapesscripts.helpers.labels`` (plus ``license plate``),
their 19 train ids and colours. GTSDB: the 43 classes of FullIJCNN2013 with their
competition category and the left/right mirror twins used by horizontal flips.
Mapillary Vistas v1.2: the 66 labels of ``config.json`` with the "strict" Vistas->Cityscapes
mapping (HRDA/MIC), and the 4-class Lane Markings subset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

IGNORE_INDEX = 255


class CityscapesLabel(NamedTuple):
    """One Cityscapes label id with its train id (255 = not trained), category and colour."""

    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, "void", False, True, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, "void", False, True, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, "flat", False, False, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, "construction", False, False, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, "object", False, False, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, "human", True, False, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, "human", True, False, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, "vehicle", False, True, (0, 0, 142)),
)

CITYSCAPES_NUM_CLASSES = 19
#: Train-id class names and colours, in train-id order.
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(
    lab.name for lab in sorted(CITYSCAPES_LABELS, key=lambda lab: lab.train_id) if 0 <= lab.train_id < 255
)
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    lab.color for lab in sorted(CITYSCAPES_LABELS, key=lambda lab: lab.train_id) if 0 <= lab.train_id < 255
)
CITYSCAPES_TRAFFIC_SIGN = CITYSCAPES_CLASSES.index("traffic sign")
CITYSCAPES_NAME_TO_ID: dict[str, int] = {lab.name: lab.id for lab in CITYSCAPES_LABELS}


def cityscapes_id_to_train_id_lut() -> np.ndarray:
    """256-entry uint8 lookup table: label id -> train id, 255 for every untrained id."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0 and 0 <= lab.train_id < 255:
            lut[lab.id] = lab.train_id
    return lut


def cityscapes_train_id_to_id_lut() -> np.ndarray:
    """256-entry uint8 lookup table: train id -> label id (255 -> 0 "unlabeled"), for server submissions."""
    lut = np.zeros(256, np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0 and 0 <= lab.train_id < 255:
            lut[lab.train_id] = lab.id
    return lut


class GtsdbClass(NamedTuple):
    """One GTSDB / GTSRB class: id, ReadMe name, GTSRB sign name and competition category."""

    id: int
    name: str
    sign_name: str
    category: str


GTSDB_CLASSES: tuple[GtsdbClass, ...] = (
    GtsdbClass(0, "speed limit 20", "Speed limit (20km/h)", "prohibitory"),
    GtsdbClass(1, "speed limit 30", "Speed limit (30km/h)", "prohibitory"),
    GtsdbClass(2, "speed limit 50", "Speed limit (50km/h)", "prohibitory"),
    GtsdbClass(3, "speed limit 60", "Speed limit (60km/h)", "prohibitory"),
    GtsdbClass(4, "speed limit 70", "Speed limit (70km/h)", "prohibitory"),
    GtsdbClass(5, "speed limit 80", "Speed limit (80km/h)", "prohibitory"),
    GtsdbClass(6, "restriction ends 80", "End of speed limit (80km/h)", "other"),
    GtsdbClass(7, "speed limit 100", "Speed limit (100km/h)", "prohibitory"),
    GtsdbClass(8, "speed limit 120", "Speed limit (120km/h)", "prohibitory"),
    GtsdbClass(9, "no overtaking", "No passing", "prohibitory"),
    GtsdbClass(10, "no overtaking (trucks)", "No passing for vehicles over 3.5 metric tons", "prohibitory"),
    GtsdbClass(11, "priority at next intersection", "Right-of-way at the next intersection", "danger"),
    GtsdbClass(12, "priority road", "Priority road", "other"),
    GtsdbClass(13, "give way", "Yield", "other"),
    GtsdbClass(14, "stop", "Stop", "other"),
    GtsdbClass(15, "no traffic both ways", "No vehicles", "prohibitory"),
    GtsdbClass(16, "no trucks", "Vehicles over 3.5 metric tons prohibited", "prohibitory"),
    GtsdbClass(17, "no entry", "No entry", "other"),
    GtsdbClass(18, "danger", "General caution", "danger"),
    GtsdbClass(19, "bend left", "Dangerous curve to the left", "danger"),
    GtsdbClass(20, "bend right", "Dangerous curve to the right", "danger"),
    GtsdbClass(21, "bend", "Double curve", "danger"),
    GtsdbClass(22, "uneven road", "Bumpy road", "danger"),
    GtsdbClass(23, "slippery road", "Slippery road", "danger"),
    GtsdbClass(24, "road narrows", "Road narrows on the right", "danger"),
    GtsdbClass(25, "construction", "Road work", "danger"),
    GtsdbClass(26, "traffic signal", "Traffic signals", "danger"),
    GtsdbClass(27, "pedestrian crossing", "Pedestrians", "danger"),
    GtsdbClass(28, "school crossing", "Children crossing", "danger"),
    GtsdbClass(29, "cycles crossing", "Bicycles crossing", "danger"),
    GtsdbClass(30, "snow", "Beware of ice/snow", "danger"),
    GtsdbClass(31, "animals", "Wild animals crossing", "danger"),
    GtsdbClass(32, "restriction ends", "End of all speed and passing limits", "other"),
    GtsdbClass(33, "go right", "Turn right ahead", "mandatory"),
    GtsdbClass(34, "go left", "Turn left ahead", "mandatory"),
    GtsdbClass(35, "go straight", "Ahead only", "mandatory"),
    GtsdbClass(36, "go right or straight", "Go straight or right", "mandatory"),
    GtsdbClass(37, "go left or straight", "Go straight or left", "mandatory"),
    GtsdbClass(38, "keep right", "Keep right", "mandatory"),
    GtsdbClass(39, "keep left", "Keep left", "mandatory"),
    GtsdbClass(40, "roundabout", "Roundabout mandatory", "mandatory"),
    GtsdbClass(41, "restriction ends (overtaking)", "End of no passing", "other"),
    GtsdbClass(
        42,
        "restriction ends (overtaking (trucks))",
        "End of no passing by vehicles over 3.5 metric tons",
        "other",
    ),
)

GTSDB_NUM_CLASSES = 43
#: The GTSDB head's extra class, after the 43 signs: every pixel that is no sign.
GTSDB_BACKGROUND = GTSDB_NUM_CLASSES
GTSDB_CATEGORIES = ("prohibitory", "mandatory", "danger", "other")

#: Classes whose mirror image is another class (bend left <-> bend right, turn left <-> turn right ...).
GTSDB_MIRROR_PAIRS: tuple[tuple[int, int], ...] = ((19, 20), (33, 34), (36, 37), (38, 39))
#: Classes whose sign looks the same mirrored (symmetric glyph). Every class in neither set has a
#: handed glyph (digits, text, a figure walking one way, a diagonal bar) whose mirror is no GTSDB class.
GTSDB_FLIP_INVARIANT: frozenset[int] = frozenset({11, 12, 13, 15, 17, 18, 22, 26, 30, 35})


def gtsdb_mirror_map() -> np.ndarray:
    """Class -> class after a horizontal flip; -1 where the flipped sign is no GTSDB class."""
    mapping = np.full(GTSDB_NUM_CLASSES, -1, dtype=np.int64)
    for c in GTSDB_FLIP_INVARIANT:
        mapping[c] = c
    for a, b in GTSDB_MIRROR_PAIRS:
        mapping[a], mapping[b] = b, a
    return mapping


class VistasLabel(NamedTuple):
    """One Mapillary Vistas v1.2 label as in ``config.json``, plus its strict Cityscapes train id."""

    name: str
    readable: str
    color: tuple[int, int, int]
    instances: bool
    evaluate: bool
    cityscapes_train_id: int


VISTAS_V12_LABELS: tuple[VistasLabel, ...] = (
    VistasLabel("animal--bird", "Bird", (165, 42, 42), True, True, 255),
    VistasLabel("animal--ground-animal", "Ground Animal", (0, 192, 0), True, True, 255),
    VistasLabel("construction--barrier--curb", "Curb", (196, 196, 196), False, True, 1),
    VistasLabel("construction--barrier--fence", "Fence", (190, 153, 153), False, True, 4),
    VistasLabel("construction--barrier--guard-rail", "Guard Rail", (180, 165, 180), False, True, 255),
    VistasLabel("construction--barrier--other-barrier", "Barrier", (90, 120, 150), False, True, 255),
    VistasLabel("construction--barrier--wall", "Wall", (102, 102, 156), False, True, 3),
    VistasLabel("construction--flat--bike-lane", "Bike Lane", (128, 64, 255), False, True, 255),
    VistasLabel("construction--flat--crosswalk-plain", "Crosswalk - Plain", (140, 140, 200), True, True, 255),
    VistasLabel("construction--flat--curb-cut", "Curb Cut", (170, 170, 170), False, True, 255),
    VistasLabel("construction--flat--parking", "Parking", (250, 170, 160), False, True, 255),
    VistasLabel("construction--flat--pedestrian-area", "Pedestrian Area", (96, 96, 96), False, True, 255),
    VistasLabel("construction--flat--rail-track", "Rail Track", (230, 150, 140), False, True, 255),
    VistasLabel("construction--flat--road", "Road", (128, 64, 128), False, True, 0),
    VistasLabel("construction--flat--service-lane", "Service Lane", (110, 110, 110), False, True, 255),
    VistasLabel("construction--flat--sidewalk", "Sidewalk", (244, 35, 232), False, True, 1),
    VistasLabel("construction--structure--bridge", "Bridge", (150, 100, 100), False, True, 255),
    VistasLabel("construction--structure--building", "Building", (70, 70, 70), False, True, 2),
    VistasLabel("construction--structure--tunnel", "Tunnel", (150, 120, 90), False, True, 255),
    VistasLabel("human--person", "Person", (220, 20, 60), True, True, 11),
    VistasLabel("human--rider--bicyclist", "Bicyclist", (255, 0, 0), True, True, 12),
    VistasLabel("human--rider--motorcyclist", "Motorcyclist", (255, 0, 100), True, True, 12),
    VistasLabel("human--rider--other-rider", "Other Rider", (255, 0, 200), True, True, 12),
    VistasLabel("marking--crosswalk-zebra", "Lane Marking - Crosswalk", (200, 128, 128), True, True, 255),
    VistasLabel("marking--general", "Lane Marking - General", (255, 255, 255), False, True, 0),
    VistasLabel("nature--mountain", "Mountain", (64, 170, 64), False, True, 255),
    VistasLabel("nature--sand", "Sand", (230, 160, 50), False, True, 255),
    VistasLabel("nature--sky", "Sky", (70, 130, 180), False, True, 10),
    VistasLabel("nature--snow", "Snow", (190, 255, 255), False, True, 255),
    VistasLabel("nature--terrain", "Terrain", (152, 251, 152), False, True, 9),
    VistasLabel("nature--vegetation", "Vegetation", (107, 142, 35), False, True, 8),
    VistasLabel("nature--water", "Water", (0, 170, 30), False, True, 255),
    VistasLabel("object--banner", "Banner", (255, 255, 128), True, True, 255),
    VistasLabel("object--bench", "Bench", (250, 0, 30), True, True, 255),
    VistasLabel("object--bike-rack", "Bike Rack", (100, 140, 180), True, True, 255),
    VistasLabel("object--billboard", "Billboard", (220, 220, 220), True, True, 255),
    VistasLabel("object--catch-basin", "Catch Basin", (220, 128, 128), True, True, 255),
    VistasLabel("object--cctv-camera", "CCTV Camera", (222, 40, 40), True, True, 255),
    VistasLabel("object--fire-hydrant", "Fire Hydrant", (100, 170, 30), True, True, 255),
    VistasLabel("object--junction-box", "Junction Box", (40, 40, 40), True, True, 255),
    VistasLabel("object--mailbox", "Mailbox", (33, 33, 33), True, True, 255),
    VistasLabel("object--manhole", "Manhole", (100, 128, 160), True, True, 0),
    VistasLabel("object--phone-booth", "Phone Booth", (142, 0, 0), True, True, 255),
    VistasLabel("object--pothole", "Pothole", (70, 100, 150), False, True, 255),
    VistasLabel("object--street-light", "Street Light", (210, 170, 100), True, True, 255),
    VistasLabel("object--support--pole", "Pole", (153, 153, 153), True, True, 5),
    VistasLabel(
        "object--support--traffic-sign-frame", "Traffic Sign Frame", (128, 128, 128), True, True, 255
    ),
    VistasLabel("object--support--utility-pole", "Utility Pole", (0, 0, 80), True, True, 5),
    VistasLabel("object--traffic-light", "Traffic Light", (250, 170, 30), True, True, 6),
    VistasLabel("object--traffic-sign--back", "Traffic Sign (Back)", (192, 192, 192), True, True, 255),
    VistasLabel("object--traffic-sign--front", "Traffic Sign (Front)", (220, 220, 0), True, True, 7),
    VistasLabel("object--trash-can", "Trash Can", (140, 140, 20), True, True, 255),
    VistasLabel("object--vehicle--bicycle", "Bicycle", (119, 11, 32), True, True, 18),
    VistasLabel("object--vehicle--boat", "Boat", (150, 0, 255), True, True, 255),
    VistasLabel("object--vehicle--bus", "Bus", (0, 60, 100), True, True, 15),
    VistasLabel("object--vehicle--car", "Car", (0, 0, 142), True, True, 13),
    VistasLabel("object--vehicle--caravan", "Caravan", (0, 0, 90), True, True, 255),
    VistasLabel("object--vehicle--motorcycle", "Motorcycle", (0, 0, 230), True, True, 17),
    VistasLabel("object--vehicle--on-rails", "On Rails", (0, 80, 100), False, True, 16),
    VistasLabel("object--vehicle--other-vehicle", "Other Vehicle", (128, 64, 64), True, True, 255),
    VistasLabel("object--vehicle--trailer", "Trailer", (0, 0, 110), True, True, 255),
    VistasLabel("object--vehicle--truck", "Truck", (0, 0, 70), True, True, 14),
    VistasLabel("object--vehicle--wheeled-slow", "Wheeled Slow", (0, 0, 192), True, True, 255),
    VistasLabel("void--car-mount", "Car Mount", (32, 32, 32), False, True, 255),
    VistasLabel("void--ego-vehicle", "Ego Vehicle", (120, 10, 10), False, True, 255),
    VistasLabel("void--unlabeled", "Unlabeled", (0, 0, 0), False, False, 255),
)

VISTAS_V12_NUM_LABELS = 66
VISTAS_V12_VOID = 65

#: The Lane Markings setting: class name -> Vistas v1.2 indices folded into it.
LANE_MARKING_CLASSES: tuple[str, ...] = ("road", "lane marking", "crosswalk plain", "crosswalk zebra")
LANE_MARKING_V12_INDICES: tuple[int, ...] = (13, 24, 8, 23)


def vistas_to_cityscapes_lut() -> np.ndarray:
    """256-entry uint8 lookup table: Vistas v1.2 index -> Cityscapes train id (strict mapping)."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for i, lab in enumerate(VISTAS_V12_LABELS):
        lut[i] = lab.cityscapes_train_id
    return lut


def vistas_v12_config() -> dict:
    """The v1.2 ``config.json`` content (labels in index order, real key names)."""
    return {
        "labels": [
            {
                "color": list(lab.color),
                "instances": lab.instances,
                "readable": lab.readable,
                "name": lab.name,
                "evaluate": lab.evaluate,
            }
            for lab in VISTAS_V12_LABELS
        ],
        "version": "1.2",
        "mapping": "public",
        "folder_structure": "{split}/{content}/{key:.{22}}.{ext}",
    }


#: Sign outlines used by the ``shape`` target policy, indexed by the values of ``gtsdb_class_shapes()``.
GTSDB_SHAPES: tuple[str, ...] = ("disc", "triangle", "inverted triangle", "octagon", "diamond")
#: Classes whose outline is not the one of their category: give way, stop, priority road.
_GTSDB_SHAPE_EXCEPTIONS: dict[int, str] = {13: "inverted triangle", 14: "octagon", 12: "diamond"}


def gtsdb_class_categories() -> np.ndarray:
    """Class id -> index into ``GTSDB_CATEGORIES`` (prohibitory, mandatory, danger, other)."""
    return np.array([GTSDB_CATEGORIES.index(c.category) for c in GTSDB_CLASSES], dtype=np.int64)


def gtsdb_class_shapes() -> np.ndarray:
    """Class id -> index into ``GTSDB_SHAPES``.

    Danger signs are triangles (apex up); give way an inverted triangle, stop an octagon, priority
    road a diamond; every other sign (prohibitory, mandatory, the round "end of ..." signs, no entry)
    a disc.
    """
    shapes = []
    for c in GTSDB_CLASSES:
        name = _GTSDB_SHAPE_EXCEPTIONS.get(c.id, "triangle" if c.category == "danger" else "disc")
        shapes.append(GTSDB_SHAPES.index(name))
    return np.array(shapes, dtype=np.int64)


#: The trained "other" class of the Lane Markings setting (every pixel that is none of the four).
LANE_MARKING_OTHER = 4
_LANE_ROAD = ("construction--flat--road",)
_LANE_CROSSWALK_PLAIN = ("construction--flat--crosswalk-plain",)
_LANE_ZEBRA = (
    "marking--crosswalk-zebra",
    "marking--discrete--crosswalk-zebra",
    "marking-only--discrete--crosswalk-zebra",
)
#: Markings whose class is unknown even to the annotator: folded to ignore rather than guessed.
_LANE_IGNORED = ("marking--discrete--ambiguous", "void--unlabeled")


def lane_marking_lut(label_names: list[str] | tuple[str, ...], other: int = LANE_MARKING_OTHER) -> np.ndarray:
    """256-entry uint8 table: Vistas label index -> Lane Markings class, folded by *name*.

    Works for v1.2 (``marking--general`` is the lane marking) and v2.0, where the general marking
    is split into ``marking--continuous--*``, ``marking--discrete--*`` and ``marking-only--*``
    classes that all fold into "lane marking", except the two crosswalk-zebra ones which fold into
    "crosswalk zebra". ``void--unlabeled`` and the ambiguous marking become 255; everything else
    ``other`` (4 = a trained class outside mIoU, or 255 to ignore it).
    """
    lut = np.full(256, other, np.uint8)
    for i, name in enumerate(label_names):
        if name in _LANE_IGNORED:
            lut[i] = IGNORE_INDEX
        elif name in _LANE_ROAD:
            lut[i] = 0
        elif name in _LANE_CROSSWALK_PLAIN:
            lut[i] = 2
        elif name in _LANE_ZEBRA:
            lut[i] = 3
        elif name.startswith(("marking--", "marking-only--")):
            lut[i] = 1
    lut[len(label_names) :] = IGNORE_INDEX
    return lut


#: Vistas v2.0 marking classes that swap under a horizontal flip (by name, so any config order works).
VISTAS_MIRROR_NAME_PAIRS: tuple[tuple[str, str], ...] = (
    ("marking--discrete--arrow--left", "marking--discrete--arrow--right"),
    ("marking--discrete--arrow--split-left-or-straight", "marking--discrete--arrow--split-right-or-straight"),
)


def vistas_mirror_pairs(label_names: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """Index pairs (a, b) of the config's labels that trade places when the image is mirrored."""
    index = {name: i for i, name in enumerate(label_names)}
    return [(index[a], index[b]) for a, b in VISTAS_MIRROR_NAME_PAIRS if a in index and b in index]
