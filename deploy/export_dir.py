"""An export directory's files, whatever it serves: ``manifest.json`` read, its ``kind``, listed files checked.

Shared by the tagger's manifest (:mod:`deploy.manifest`) and the recommender's (:mod:`deploy.recommender`).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from deploy import DeployError

MANIFEST = "manifest.json"
TAGGER, RECOMMENDER = "tagger", "recommender"
KINDS = (TAGGER, RECOMMENDER)  # a manifest's "kind"; a tagger's manifest has none


class ManifestError(DeployError):
    """The export directory does not match its manifest (or the manifest is malformed)."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``doc[key]``, which must be present and of type ``kind`` (a bool is no int)."""
    if key not in doc:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}: {key!r} must be {names}, got {value!r}")
    return value


def safe_path(root: Path, name: Any, where: str) -> Path:
    """``root / name`` for a plain relative file name that stays inside ``root``."""
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}: file name must be a non-empty string, got {name!r}")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise ManifestError(f"{where}: file name {name!r} must be relative to the export directory")
    return root / pure


def read_json(path: Path) -> Any:
    """A JSON file; :class:`ManifestError` naming it when it is missing, unreadable or invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: invalid JSON: {exc}") from None


def listed_files(root: Path, doc: Mapping[str, Any], where: str) -> dict[str, str]:
    """The manifest's ``files``: relative names inside ``root`` → hex sha256 (never ``manifest.json`` itself)."""
    files = require(doc, "files", dict, where)
    for name, digest in files.items():
        safe_path(root, name, f"{where} files")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ManifestError(f"{where}: files[{name!r}] must be a hex sha256, got {digest!r}")
    if MANIFEST in files:
        raise ManifestError(f"{where}: 'files' must not list {MANIFEST} itself")
    return dict(files)


def verify_files(root: Path, files: Mapping[str, str], verify_hashes: bool = True) -> None:
    """Every listed file exists under ``root`` and (``verify_hashes``) has its sha256."""
    for name, digest in sorted(files.items()):
        file_path = safe_path(root, name, str(root / MANIFEST))
        if not file_path.is_file():
            raise ManifestError(f"{file_path}: listed in {MANIFEST} but missing")
        if verify_hashes:
            actual = sha256_file(file_path)
            if actual != digest.lower():
                raise ManifestError(f"{file_path}: sha256 mismatch (manifest {digest}, file {actual}); "
                                    "the file was changed or corrupted after export")


def read_manifest_doc(model_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The export directory (resolved) and its ``manifest.json`` as a JSON object, not yet validated."""
    root = Path(model_dir).expanduser().resolve()
    if not root.is_dir():
        raise ManifestError(f"{root}: export directory not found")
    doc = read_json(root / MANIFEST)
    if not isinstance(doc, dict):
        raise ManifestError(f"{root / MANIFEST}: must be a JSON object")
    return root, doc


def manifest_kind(model_dir: str | os.PathLike[str]) -> str:
    """What an export serves: ``"recommender"`` (its manifest says so) or ``"tagger"`` (no ``kind``)."""
    kind = read_manifest_doc(model_dir)[1].get("kind", TAGGER)
    if kind not in KINDS:
        raise ManifestError(f"{Path(model_dir) / MANIFEST}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return kind
