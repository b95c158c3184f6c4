"""Typed run configurations: dataclasses loaded from one flat YAML file plus ``--set key=value`` overrides.

Every job (train, eval, experiments ...) describes its options as a dataclass whose fields carry type
hints and defaults. :func:`load_config` reads a flat YAML mapping, applies command-line overrides,
checks every key and value against the dataclass, and returns an instance. Mistakes are reported as a
one-line :class:`~multiseg.errors.MultisegError` naming the key (with a "did you mean" for typos).
:func:`save_config` writes the fully resolved configuration beside a run's outputs, so the run can be
repeated from that file alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from multiseg.errors import MultisegError
from multiseg.files import atomic_write_text

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def _type_name(tp: Any) -> str:
    """A short human name for a type hint, for error messages."""
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(tp) if a is not Ellipsis)
        return f"{origin.__name__}[{args}]"
    return getattr(tp, "__name__", str(tp))


class _CoerceError(ValueError):
    """A value does not fit a type hint; the caller adds the key to the message."""


def _coerce(value: Any, tp: Any) -> Any:
    """Convert a YAML value to the type hint ``tp`` or raise :class:`_CoerceError`.

    YAML already yields ints, floats, bools, lists and mappings; this only widens safe cases
    (int -> float, str -> Path) and checks everything else, so ``lr: "fast"`` is an error rather
    than a crash deep inside training.
    """
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise _CoerceError(f"expected one of {_type_name(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _CoerceError:
                continue
        raise _CoerceError(f"expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise _CoerceError(f"expected a list ({_type_name(tp)}), got {value!r}")
        (item_tp, *_rest) = get_args(tp) or (Any,)
        items = [_coerce(v, item_tp) for v in value]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _CoerceError(f"expected a mapping ({_type_name(tp)}), got {value!r}")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp): _coerce(v, val_tp) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _CoerceError(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _CoerceError(f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "5e-4" (no dot) as a string; accept what Python reads as a number.
            try:
                return float(value)
            except ValueError:
                pass
        raise _CoerceError(f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _CoerceError(f"expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _CoerceError(f"expected a path, got {value!r}")
    raise TypeError(f"config type {tp!r} is not supported")  # a bug in a config class, not user input


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Field name -> (field, resolved type hint) of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def _unknown_key_message(key: str, known: Iterable[str], source: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown config key '{key}' in {source}{hint}"


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config") -> T:
    """Build the dataclass ``cls`` from a flat mapping, checking keys, types and required values."""
    fields = _fields(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise MultisegError(_unknown_key_message(str(key), fields, source))
        _field, tp = fields[key]
        try:
            kwargs[key] = _coerce(value, tp)
        except _CoerceError as err:
            raise MultisegError(f"config key '{key}' in {source}: {err}") from None
    for name, (field, _tp) in fields.items():
        if name not in kwargs and field.default is _MISSING and field.default_factory is _MISSING:
            raise MultisegError(
                f"missing required config key '{name}' (set it in the YAML file or with --set)"
            )
    try:
        return cls(**kwargs)
    except ValueError as err:  # __post_init__ validation of a config class
        raise MultisegError(f"invalid config in {source}: {err}") from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a flat mapping (or nothing)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MultisegError(f"config file {path} does not exist") from None
    except OSError as err:
        raise MultisegError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise MultisegError(f"cannot parse config file {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MultisegError(
            f"config file {path} must hold a mapping of keys to values, not {type(data).__name__}"
        )
    return data


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; the value is read as YAML (``lr=1e-3``, ``datasets=[a,b]``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise MultisegError(f"--set expects key=value, got '{item}'")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def load_config(cls: type[T], path: Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from an optional flat YAML file, then apply ``--set key=value`` overrides."""
    data: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    over = parse_overrides(overrides)
    fields = _fields(cls)
    for key in over:
        if key not in fields:
            raise MultisegError(_unknown_key_message(key, fields, "--set"))
    data.update(over)
    return config_from_dict(cls, data, source if not over else f"{source} + --set")


def _plain(value: Any) -> Any:
    """A YAML-safe plain value: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a flat dict of plain YAML values, in field order."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def dump_config(cfg: Any) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)


def save_config(cfg: Any, path: Path) -> None:
    """Save the fully resolved config as YAML (atomically)."""
    atomic_write_text(path, dump_config(cfg))


def config_differences(old: Any, new: Any) -> list[str]:
    """Human-readable ``key: old -> new`` lines for every field that differs between two configs."""
    a, b = config_to_dict(old), config_to_dict(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in b if a.get(k) != b.get(k)]


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    """One config key as ``--help`` lists it."""

    name: str
    type: str  # as in error messages: int, float | null, 'merge' | 'box' | 'shape' ...
    default: str  # as YAML would write it: 0.0005, [cityscapes, gtsdb], null
    help: str  # the ``#:`` comment above the field ("" where it has none)
    section: str  # the ``# -- section --`` heading the field is under ("" before the first)


def config_docs(cls: type) -> list[KeyDoc]:
    """Every field of a config dataclass with its type, default and the ``#:`` comment lines above it.

    Read from the class's own source, so ``--help`` follows the class and never goes stale: a new field
    shows up with its type and default, and tests require its ``#:`` line.
    """
    comments: dict[str, tuple[str, str]] = {}
    pending: list[str] = []
    section = ""
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        heading = re.fullmatch(r"# -- (.+?) -*", text)
        if heading:
            section, pending = heading.group(1), []
        elif text.startswith("#:"):
            pending.append(text[2:].strip())
        elif match := re.match(r"(\w+)\s*:", text):
            comments[match.group(1)] = (" ".join(pending), section)
            pending = []
        elif text:
            pending = []
    docs = []
    for name, (field, tp) in _fields(cls).items():
        default = field.default_factory() if field.default is _MISSING else field.default  # type: ignore[misc]
        dumped = yaml.safe_dump(_plain(default), default_flow_style=True, width=1000)
        help_text, where = comments.get(name, ("", ""))
        docs.append(KeyDoc(name, _type_name(tp), dumped.removesuffix("\n...\n").strip(), help_text, where))
    return docs


def config_help(cls: type, alternative: tuple[str, Any] | None = None) -> str:
    """The keys of a config class for ``--help``: per section, ``name (type) = default`` and its line.

    ``alternative`` (a label and a config instance) adds where that config's value differs from the
    default, e.g. the demo run's ``[demo run: 72]``.
    """
    other = config_to_dict(alternative[1]) if alternative is not None else {}
    lines: list[str] = []
    section = None
    for doc in config_docs(cls):
        if doc.section != section:
            section = doc.section
            lines.append(f"{section}:" if section else "")
        value = f"{doc.name} ({doc.type}) = {doc.default}"
        if alternative is not None and doc.name in other:
            theirs = yaml.safe_dump(other[doc.name], default_flow_style=True, width=1000)
            theirs = theirs.removesuffix("\n...\n").strip()
            if theirs != doc.default:
                value += f"  [{alternative[0]}: {theirs}]"
        lines += [f"  {value}", f"      {doc.help}"]
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    """``"512x1024"`` -> (512, 1024); anything else is a :class:`MultisegError`."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise MultisegError(f"size {text!r} is not HxW (e.g. 512x1024)") from err
    if h < 1 or w < 1:
        raise MultisegError(f"size {text!r} must be positive")
    return h, w
