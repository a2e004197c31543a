"""Load a config: YAML file (with ``_base_`` includes) + ``-o Section.key=value`` overrides → :class:`Config`.

Values from files and overrides are parsed with ``yaml.safe_load`` only (never ``eval``), then
checked against the schema's type hints. Unknown keys and wrong types raise :class:`ConfigError`
with the key, the expected type and a "did you mean" suggestion (:mod:`paddle_tag.config.suggest`, which
also knows the names other tools use: ``learning_rate`` → ``Optimizer.lr``).
"""
from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Union

import yaml

from paddle_tag.config.schema import Config
from paddle_tag.config.suggest import suggest
from paddle_tag.errors import ConfigError
from paddle_tag.utils.io import atomic_write_text

BASE_KEY = "_base_"


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> Config:
    """Build a validated :class:`Config` from an optional YAML file and ``Key.sub=value`` overrides."""
    raw: dict[str, Any] = read_yaml(Path(path)) if path else {}
    for item in overrides:
        dotted, value = parse_override(item)
        set_dotted(raw, dotted, value)
    return config_from_dict(raw)


def read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, merging the files named in its ``_base_`` (a path or a list of paths) first."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config includes itself through _base_: {chain}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: invalid UTF-8 (byte 0x{exc.object[exc.start]:02x}); save the config as "
                          f"UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    bases = data.pop(BASE_KEY, [])
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        deep_merge(merged, read_yaml(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def deep_merge(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Merge ``source`` into ``target`` in place; nested mappings merge, other values replace."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value
    return target


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``Section.key=value`` and parse the value as a YAML scalar.

    Text that YAML would read as a mapping or a list is kept as typed: ``-o Data.text_prefix="query: "``
    reaches us (after the shell) as ``query: ``, not ``{query: null}``. The few list keys
    (``Export.variants``) parse that text themselves in :func:`coerce`, knowing their type."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like Section.key=value")
    dotted, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    if isinstance(value, (dict, list)):
        value = text
    return dotted.strip(), value


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw[Section][key] = value`` for ``dotted = "Section.key"`` (validated later)."""
    parts = dotted.split(".")
    if len(parts) != 2 or not all(parts):
        hint = suggest(f".{parts[-1]}", all_keys()) if len(parts) == 1 and parts[0] else ""
        raise ConfigError(f"override key {dotted!r} must be Section.key{hint or ', e.g. Optimizer.lr'}")
    section, key = parts
    node = raw.setdefault(section, {})
    if not isinstance(node, dict):
        raise ConfigError(f"{section} must be a mapping of keys, got {node!r}")
    node[key] = value


def all_keys() -> list[str]:
    """Every valid ``Section.key`` of the schema, in definition order."""
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(Config) for f in dataclasses.fields(s.default_factory)]


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping against the schema and build the :class:`Config`."""
    sections = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    built = {}
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown section {name!r}{suggest(name, list(sections))}; "
                              f"valid sections: {', '.join(sections)}")
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"section {name} must be a mapping of keys, got {value!r}")
    for name, cls in sections.items():
        values = raw.get(name) or {}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"unknown key {name}.{key}{suggest(f'{name}.{key}', all_keys())}")
            kwargs[key] = coerce(value, hints[key], f"{name}.{key}")
        built[name] = cls(**kwargs)
    return Config(**built)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is Union:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` checked (and safely widened: int→float, number→str) against type ``tp``."""
    origin = typing.get_origin(tp)
    if origin is Union:
        for option in typing.get_args(tp):
            try:
                return coerce(value, option, key)
            except ConfigError:
                continue
    elif origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        hint = suggest(str(value), [str(c) for c in choices])
        raise ConfigError(f"{key}: {value!r} is not allowed; expected {_type_name(tp)}{hint}")
    elif origin is list:
        return _coerce_list(value, typing.get_args(tp)[0], key)
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _coerce_list(value: Any, item_tp: Any, key: str) -> list:
    """A list key from a YAML list, or from ``-o`` text: ``[a, b]`` (YAML flow list) or ``a,b`` (comma list)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ConfigError(f"{key}: {value!r} is not a valid YAML list") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected list of {_type_name(item_tp)}, got {value!r} ({type(value).__name__})")
    return [coerce(item, item_tp, f"{key}[{i}]") for i, item in enumerate(value)]


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts (for YAML/JSON output)."""
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically (temp file + rename)."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), allow_unicode=True, sort_keys=False))
