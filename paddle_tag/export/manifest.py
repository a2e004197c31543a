"""``manifest.json``: the contract between an export directory and the Paddle-free runner in ``deploy/``.

A recommender's manifest says ``"kind": "recommender"`` and has its own keys
(:mod:`paddle_tag.export.recommend_manifest`); a tagger's has no ``kind``, and these keys.

Keys (shared with ``deploy/``, change both sides together)::

    format_version  1, or 2 for a model that reads texts as windows or has a wide part
    task            "multi_class" | "multi_label"
    labels          tag names in logit order
    thresholds      {tag: float} (multi_label) | null (multi_class: arg-max)
    activation      "softmax" | "sigmoid"
    max_seq_len     int, tokens including [CLS]/[SEP] (tokenizer.json truncates to it)
    pad_id          int, right-padding id for batches
    inputs          [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}]
                    (windows: shape ["batch", "windows", "sequence"]; a wide part adds
                    {"name": "char_ids", "dtype": "int64", "shape": ["batch", "chars"]}: code points, 0-padded)
    outputs         [{"name": "logits", "dtype": "float32", "shape": ["batch", <num_labels>]}]
    tokenizer       {"file": "tokenizer.json"}
    models          {"fp32": {"file": "model.onnx"}, "fp16": {...}, "int8": {...}} (the variants exported)
    files           {relative path: sha256} of every file in the directory but manifest.json
    parity          {"fp32": {samples, max_abs_diff, tags_identical, tags_agreement, multi_window_samples},
                     "fp16"/"int8": {..., metric, metric_dygraph, metric_onnx}}: tags_agreement is the share
                    of samples with the same tags as Paddle; multi_window_samples those read as several windows
    source          {"checkpoint": path, "config_sha256": sha256 of the checkpoint's config.yaml}
    versions        {"paddle", "paddle2onnx", "onnx", "onnxruntime", "paddle_tag"}
    created         ISO-8601 UTC time
    windows         (version 2) {"overlap": int, "max_windows": int} | null: a text over max_seq_len tokens is
                    read as up to max_windows windows of max_seq_len tokens, each sharing overlap tokens with
                    the one before (tokenizers' truncation with stride=overlap, the overflowing encodings)
    wide            (version 2) {"ngram_max": int, "buckets": int, "idf": bool, "max_chars": int} | null: the
                    model takes the code points of the text's first max_chars characters (it hashes the n-grams
                    and weighs them itself; ngram_max, buckets and idf say how, for the reader)

This module uses the standard library only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from paddle_tag.errors import ManifestError
from paddle_tag.export.recommend_manifest import (RECOMMENDER, RECOMMENDER_KEYS, check_recommender,
                                                   check_recommender_files)
from paddle_tag.utils.io import atomic_write_json, read_json, sha256_file

MANIFEST_FILE = "manifest.json"
TASK_ACTIVATION = {"multi_class": "softmax", "multi_label": "sigmoid"}
KEYS_V1 = ("format_version", "task", "labels", "thresholds", "activation", "max_seq_len", "pad_id", "inputs",
           "outputs", "tokenizer", "models", "files", "parity", "source", "versions", "created")
#: format_version → its keys; version 2 (windows, wide part) only where needed, so plain exports stay readable
#: by deploy/ packages that know version 1 alone
KEYS = {1: KEYS_V1, 2: KEYS_V1 + ("windows", "wide")}


def format_version(windows: Optional[dict], wide: Optional[dict]) -> int:
    """1 for a model that reads one window of ids, 2 when it reads windows or has a wide part."""
    return 2 if windows or wide else 1


def io_spec(num_labels: int, windowed: bool = False, wide: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The ``inputs`` / ``outputs`` entries for a tagger with ``num_labels`` tags."""
    inputs = [{"name": "input_ids", "dtype": "int64",
               "shape": ["batch", "windows", "sequence"] if windowed else ["batch", "sequence"]}]
    if wide:
        inputs.append({"name": "char_ids", "dtype": "int64", "shape": ["batch", "chars"]})
    return {"inputs": inputs,
            "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", int(num_labels)]}]}


def file_hashes(directory: str | os.PathLike) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``directory`` except ``manifest.json``."""
    directory = Path(directory)
    names = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    return {name: sha256_file(directory / name) for name in names if name != MANIFEST_FILE}


def write_manifest(directory: str | os.PathLike, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash the directory's files into ``manifest["files"]``, validate, write ``manifest.json``; return it."""
    directory = Path(directory)
    manifest = {**manifest, "files": file_hashes(directory)}
    keys = RECOMMENDER_KEYS if manifest.get("kind") == RECOMMENDER else KEYS[manifest["format_version"]]
    manifest = {key: manifest[key] for key in keys}  # contract order; KeyError if missing
    validate_manifest(directory, manifest)
    atomic_write_json(directory / MANIFEST_FILE, manifest)
    return manifest


def read_manifest(directory: str | os.PathLike, verify_files: bool = True) -> dict[str, Any]:
    """Load and validate ``<directory>/manifest.json`` (with file hashes unless ``verify_files=False``)."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{directory}: no {MANIFEST_FILE}; not an export directory")
    try:
        manifest = read_json(path)
    except ValueError as exc:
        raise ManifestError(f"{path}: invalid JSON ({exc})") from None
    return validate_manifest(directory, manifest, verify_files)


def _fail(directory: Path, message: str) -> None:
    raise ManifestError(f"{directory / MANIFEST_FILE}: {message}")


def validate_manifest(directory: str | os.PathLike, manifest: dict[str, Any],
                      verify_files: bool = True) -> dict[str, Any]:
    """Check ``manifest`` against the contract and the files in ``directory``; return it.

    Raises :class:`~paddle_tag.errors.ManifestError` naming the first problem: a missing key, a bad value,
    labels that disagree with ``labels.json`` / thresholds / the output shape, a listed file that is missing
    or whose sha256 differs (a changed file), or a file in the directory that is not listed.
    """
    directory = Path(directory)
    if not isinstance(manifest, dict):
        _fail(directory, "expected a JSON object")
    if manifest.get("kind") == RECOMMENDER:
        check_recommender(directory, manifest)
        if verify_files:
            verify_directory(directory, manifest["files"])
            check_recommender_files(directory, manifest)
        return manifest
    version = manifest.get("format_version")
    if version not in KEYS or isinstance(version, bool):
        _fail(directory, f"format_version {version!r} is not supported (expected one of {sorted(KEYS)})")
    missing = [key for key in KEYS[version] if key not in manifest]
    if missing:
        _fail(directory, f"missing keys {missing}")
    windows, wide = manifest.get("windows"), manifest.get("wide")
    _check_windows(directory, windows, manifest["max_seq_len"])
    _check_wide(directory, wide)
    if version != format_version(windows, wide):
        _fail(directory, f"format_version {version} does not fit windows={windows!r}, wide={wide!r}")
    task = manifest["task"]
    if task not in TASK_ACTIVATION:
        _fail(directory, f"task {task!r} is not one of {list(TASK_ACTIVATION)}")
    if manifest["activation"] != TASK_ACTIVATION[task]:
        _fail(directory, f"activation {manifest['activation']!r} does not fit task {task} ({TASK_ACTIVATION[task]})")
    labels = manifest["labels"]
    if (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels)
            or len(set(labels)) != len(labels)):
        _fail(directory, "labels must be a list of at least 2 distinct strings")
    _check_thresholds(directory, task, labels, manifest["thresholds"])
    for key in ("max_seq_len", "pad_id"):
        if not isinstance(manifest[key], int) or isinstance(manifest[key], bool) or manifest[key] < 0:
            _fail(directory, f"{key} must be a non-negative integer, got {manifest[key]!r}")
    if manifest["max_seq_len"] < 3:
        _fail(directory, f"max_seq_len must be at least 3, got {manifest['max_seq_len']}")
    expected_io = io_spec(len(labels), windowed=bool(windows), wide=bool(wide))
    for key in ("inputs", "outputs"):
        if manifest[key] != expected_io[key]:
            _fail(directory, f"{key} {manifest[key]!r} differ from {expected_io[key]!r} ({len(labels)} labels)")
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        _fail(directory, "files must map file names to sha256 digests")
    models = manifest["models"]
    if not isinstance(models, dict) or "fp32" not in models:
        _fail(directory, "models must list at least fp32")
    referenced = [manifest["tokenizer"].get("file")] + [entry.get("file") for entry in models.values()]
    for name in referenced + ["labels.json"]:
        if name not in files:
            _fail(directory, f"{name!r} is referenced but not listed in files")
    if verify_files:
        verify_directory(directory, files)
        listed = read_json(directory / "labels.json")
        if listed != labels:
            _fail(directory, f"labels.json {listed} differs from the manifest's labels {labels}")
    return manifest


def _positive_ints(directory: Path, entry: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(entry, dict) or sorted(entry) != sorted(keys):
        _fail(directory, f"{what} must be null or an object with exactly {list(keys)}, got {entry!r}")
    for key in keys:
        value = entry[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "overlap" else 1):
            _fail(directory, f"{what}.{key} must be a {'non-negative' if key == 'overlap' else 'positive'} "
                             f"integer, got {value!r}")


def _check_windows(directory: Path, windows: Any, max_seq_len: Any) -> None:
    if windows is None:
        return
    _positive_ints(directory, windows, ("overlap", "max_windows"), "windows")
    if isinstance(max_seq_len, int) and windows["overlap"] > max_seq_len - 3:
        _fail(directory, f"windows.overlap {windows['overlap']} must be at most max_seq_len - 3 = {max_seq_len - 3}")


def _check_wide(directory: Path, wide: Any) -> None:
    if wide is None:
        return
    if not isinstance(wide, dict) or not isinstance(wide.get("idf"), bool):
        _fail(directory, f"wide must be null or an object whose idf is true or false, got {wide!r}")
    _positive_ints(directory, {k: v for k, v in wide.items() if k != "idf"}, ("ngram_max", "buckets", "max_chars"),
                   "wide")


def _check_thresholds(directory: Path, task: str, labels: list[str], thresholds: Optional[dict]) -> None:
    if task == "multi_class":
        if thresholds is not None:
            _fail(directory, "thresholds must be null for multi_class (arg-max)")
        return
    if not isinstance(thresholds, dict) or list(thresholds) != labels:
        _fail(directory, "thresholds must map every label, in label order, to a number (multi_label)")
    for name, value in thresholds.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            _fail(directory, f"threshold of {name!r} must be a number in [0, 1], got {value!r}")


def verify_directory(directory: str | os.PathLike, files: dict[str, str]) -> None:
    """Every listed file exists with its sha256, and nothing else is in the directory."""
    directory = Path(directory)
    for name, digest in files.items():
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            _fail(directory, f"file name {name!r} must be relative and inside the directory")
        if not path.is_file():
            _fail(directory, f"{name} is missing")
        if sha256_file(path) != digest:
            _fail(directory, f"{name} has changed: sha256 {sha256_file(path)} != {digest} in the manifest")
    extra = sorted(set(file_hashes(directory)) - set(files))
    if extra:
        _fail(directory, f"files not listed in the manifest: {extra}")
