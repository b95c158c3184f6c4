"""The universal taxonomy: one class list over every dataset, each dataset class a set of its classes.

``head_mode: universal`` trains one softmax over the universal classes; a pixel a dataset labels
with class ``c`` is trained on the summed probability of ``c``'s set (Bevandić et al.'s NLL+), and a
dataset's prediction sums the same probabilities. The shipped file is ``taxonomy.yaml`` beside this
module (its comments document every non-obvious choice); :func:`load_taxonomy` reads and checks a
taxonomy file, :func:`restrict` keeps the distinctions a run's datasets make, and
:meth:`Taxonomy.to_dict` / :func:`taxonomy_from_dict` carry it inside a checkpoint.

Every mistake in a file is a one-line :class:`MultisegError` naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiseg.config import read_yaml_mapping
from multiseg.errors import MultisegError
from multiseg.labels import CITYSCAPES_CLASSES, GTSDB_CLASSES, LANE_MARKING_CLASSES, VISTAS_V12_LABELS

#: The taxonomy shipped with multiseg.
DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")
#: In a set: every universal class no other class of the same dataset covers.
REST = "*"
_TOP_KEYS = ("groups", "universal", "datasets")


def dataset_classes(name: str) -> tuple[str, ...] | None:
    """The class names a dataset head has, in head order, as a taxonomy file names them."""
    table = {
        "cityscapes": CITYSCAPES_CLASSES,
        "gtsdb": (*(c.name for c in GTSDB_CLASSES), "background"),
        "vistas": tuple(lab.name for lab in VISTAS_V12_LABELS if lab.name != "void--unlabeled"),
        "lanes": (*LANE_MARKING_CLASSES, "other"),
    }
    return table.get(name)


@dataclass(frozen=True)
class Taxonomy:
    """Universal class names, and per dataset head its class names and their universal sets."""

    classes: tuple[str, ...]
    dataset_names: dict[str, tuple[str, ...]]
    unions: dict[str, tuple[tuple[int, ...], ...]]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def membership(self, head: str) -> np.ndarray:
        """``(C_head, U)`` 0/1 float32 matrix: row c marks the universal classes class c covers."""
        matrix = np.zeros((len(self.unions[head]), self.num_classes), np.float32)
        for c, members in enumerate(self.unions[head]):
            matrix[c, list(members)] = 1.0
        return matrix

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (a checkpoint's ``model_config`` holds this)."""
        return {
            "classes": list(self.classes),
            "datasets": {
                h: {"classes": list(self.dataset_names[h]), "unions": [list(u) for u in self.unions[h]]}
                for h in self.unions
            },
        }


def taxonomy_from_dict(data: Mapping[str, Any]) -> Taxonomy:
    """The inverse of :meth:`Taxonomy.to_dict`."""
    heads = data["datasets"]
    return Taxonomy(
        tuple(data["classes"]),
        {h: tuple(v["classes"]) for h, v in heads.items()},
        {h: tuple(tuple(int(i) for i in u) for u in v["unions"]) for h, v in heads.items()},
    )


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise MultisegError(f"{where} must be a non-empty list of class names")
    return value


def _expand(members: list[str], groups: Mapping[str, list[str]]) -> list[str]:
    out: list[str] = []
    for name in members:
        out.extend(groups.get(name, [name]))
    return out


def _dataset_unions(
    head: str, entry: Any, universal: Mapping[str, int], groups: Mapping[str, list[str]], where: str
) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """One dataset's class names and sets, checked: known classes, in head order, disjoint sets."""
    if not isinstance(entry, Mapping) or not entry:
        raise MultisegError(f"{where} must map each class of {head!r} to a list of universal classes")
    expected = dataset_classes(head)
    names = [str(k) for k in entry]
    if expected is not None and names != list(expected):
        missing = [c for c in expected if c not in names]
        extra = [c for c in names if c not in expected]
        if missing:
            raise MultisegError(f"{where}: class {missing[0]!r} of {head!r} is not covered")
        if extra:
            raise MultisegError(f"{where}: {extra[0]!r} is no class of {head!r}")
        raise MultisegError(f"{where}: classes must be in the head's order ({', '.join(expected[:3])}, ...)")
    owner: dict[int, str] = {}
    sets: list[list[int] | None] = []
    for name, value in entry.items():
        members = _expand(_names(value, f"{where}.{name}"), groups)
        if members == [REST]:
            sets.append(None)
            continue
        indices = []
        for member in members:
            if member not in universal:
                raise MultisegError(f"{where}.{name}: {member!r} is no universal class")
            u = universal[member]
            if u in owner:
                raise MultisegError(f"{where}: {owner[u]!r} and {name!r} both cover {member!r}")
            owner[u] = str(name)
            indices.append(u)
        sets.append(sorted(indices))
    rest = [u for u in range(len(universal)) if u not in owner]
    if sum(s is None for s in sets) > 1:
        raise MultisegError(f"{where}: only one class may be {REST!r} (the rest)")
    final = tuple(tuple(rest) if s is None else tuple(s) for s in sets)
    empty = [n for n, s in zip(names, final, strict=True) if not s]
    if empty:
        raise MultisegError(f"{where}.{empty[0]}: covers no universal class")
    return tuple(names), final


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and check a taxonomy file (default: the shipped one); see the module docstring."""
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    data = read_yaml_mapping(path)
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise MultisegError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
    classes = _names(data.get("universal"), f"{path}: universal")
    seen: dict[str, int] = {}
    for i, name in enumerate(classes):
        if name in seen or name == REST:
            raise MultisegError(f"{path}: universal[{i}] {name!r} is listed twice or reserved")
        seen[name] = i
    groups_raw = data.get("groups") or {}
    if not isinstance(groups_raw, Mapping):
        raise MultisegError(f"{path}: groups must map group names to lists of universal classes")
    groups = {str(k): _names(v, f"{path}: groups.{k}") for k, v in groups_raw.items()}
    clash = [g for g in groups if g in seen]
    if clash:
        raise MultisegError(f"{path}: groups.{clash[0]} has the name of a universal class")
    heads = data.get("datasets")
    if not isinstance(heads, Mapping) or not heads:
        raise MultisegError(f"{path}: datasets must map dataset names to their classes' sets")
    names, unions = {}, {}
    for head, entry in heads.items():
        names[str(head)], unions[str(head)] = _dataset_unions(
            str(head), entry, seen, groups, f"{path}: datasets.{head}"
        )
    _check_reachable(path, classes, heads, groups)
    return Taxonomy(tuple(classes), names, unions)


def _check_reachable(path: Path, classes: list[str], heads: Mapping[str, Any], groups: Mapping) -> None:
    """Every universal class must be named by some dataset class (not only reached through ``*``)."""
    named = {m for entry in heads.values() for value in entry.values() for m in _expand(value, groups)}
    lost = [c for c in classes if c not in named]
    if lost:
        raise MultisegError(f"{path}: universal class {lost[0]!r} is named by no dataset class")


def restrict(taxonomy: Taxonomy, heads: Mapping[str, int]) -> Taxonomy:
    """The taxonomy of a run that trains ``heads`` (name -> class count).

    Universal classes that none of these heads tells apart (same owning class in every head) are
    merged into one, named by the dataset class whose whole set it is, else by its first class with
    ``+N`` for the others: a run over Cityscapes and GTSDB
    has no use for Vistas' 17 kinds of street furniture. A head with fewer classes than the file
    lists keeps the first ones (``lanes`` without its trained "other" class).
    """
    missing = [h for h in heads if h not in taxonomy.unions]
    if missing:
        raise MultisegError(
            f"taxonomy: dataset {missing[0]!r} has no entry (it has {', '.join(taxonomy.unions)})"
        )
    for head, count in heads.items():
        if count > len(taxonomy.unions[head]):
            raise MultisegError(
                f"taxonomy: head {head!r} has {count} classes, "
                f"the taxonomy lists {len(taxonomy.unions[head])}"
            )
    owner = {h: np.full(taxonomy.num_classes, -1, np.int64) for h in heads}
    for head, count in heads.items():
        for c, members in enumerate(taxonomy.unions[head][:count]):
            owner[head][list(members)] = c
    signature = [tuple(int(owner[h][u]) for h in heads) for u in range(taxonomy.num_classes)]
    groups: dict[tuple[int, ...], list[int]] = {}
    for u, sig in enumerate(signature):
        groups.setdefault(sig, []).append(u)
    kept = list(groups.values())
    new_index = {u: k for k, members in enumerate(kept) for u in members}
    whole = {
        tuple(members): name
        for h, count in reversed(list(heads.items()))
        for name, members in zip(taxonomy.dataset_names[h][:count], taxonomy.unions[h][:count], strict=True)
    }
    classes = tuple(
        taxonomy.classes[m[0]]
        if len(m) == 1
        else whole.get(tuple(m), f"{taxonomy.classes[m[0]]} +{len(m) - 1}")
        for m in kept
    )
    unions = {
        h: tuple(tuple(sorted({new_index[u] for u in members})) for members in taxonomy.unions[h][:count])
        for h, count in heads.items()
    }
    names = {h: taxonomy.dataset_names[h][:count] for h, count in heads.items()}
    return Taxonomy(classes, names, unions)


def describe(taxonomy: Taxonomy, heads: Sequence[str] | None = None) -> str:
    """One line: how many universal classes, and each head's class count."""
    chosen = list(heads) if heads is not None else list(taxonomy.unions)
    per_head = ", ".join(f"{h} {len(taxonomy.unions[h])}" for h in chosen)
    return f"{taxonomy.num_classes} universal classes ({per_head})"
