"""``manifest.json`` of a recommender export (``"kind": "recommender"``): the contract with ``deploy/recommender.py``.

Keys (shared with ``deploy/``, change both sides together)::

    format_version  1
    kind            "recommender" (a tagger's manifest has no ``kind``)
    model           the next-item model's config: {name, num_items, max_len, hidden, layers, heads, dropout,
                    item_tags}
    inputs          [{"name": "history", "dtype": "int64", "shape": ["batch", max_len]}]: item indices (1..N,
                    rows of items.json), the last max_len of a history, left-padded with 0
    outputs         [{"name": "user_vector", "dtype": "float32", "shape": ["batch", hidden]}]: the state after
                    the last item; an item's score is its dot product with the item's row of the table
    models          {"fp32": {"file": "user_encoder.onnx"}} (FP32 only)
    item_table      {"file": "item_table.npy", "dtype": "float32", "shape": [N + 1, hidden], "padding_row": 0}
    items           {"file": "items.json", "count": N, "ids_sha256": :func:`ids_digest` of items.json's ids}
                    items.json: {"ids": ["<pad>", id_1, ...], "titles": [...], "tags": [[tag, ...], ...]}, in
                    index order (row i of the table is ids[i])
    popular         {"file": "popular.json", "counted_from": what was counted}: popular.json is
                    {"order": [item index, ...] every item, most interactions first, "counts": [...]}: the
                    answer to an empty history
    files           {relative path: sha256} of every file in the directory but manifest.json
    parity          {"fp32": {"split", "users", "max_abs_diff", "top10_agreement", "top10_identical"}}: Paddle vs
                    ONNX Runtime user vectors, and the share of users with the same 10 items (seen ones excluded)
    source          {"checkpoint", "config_sha256", "interactions"}
    versions        {"paddle", "paddle2onnx", "onnx", "onnxruntime", "paddle_tag"}
    created         ISO-8601 UTC time
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from paddle_tag.errors import ManifestError
from paddle_tag.utils.io import read_json

RECOMMENDER = "recommender"
RECOMMENDER_KEYS = ("format_version", "kind", "model", "inputs", "outputs", "models", "item_table", "items",
                    "popular", "files", "parity", "source", "versions", "created")
PAD_ID = "<pad>"
MODEL_KEYS = ("name", "num_items", "max_len", "hidden", "layers", "heads", "dropout", "item_tags")


def ids_digest(ids: list[str]) -> str:
    """SHA-256 of the item ids in index order (compact JSON, ASCII-escaped: one byte string for one list)."""
    return hashlib.sha256(json.dumps(ids, ensure_ascii=True, separators=(",", ":")).encode("ascii")).hexdigest()


def recommender_io(max_len: int, hidden: int) -> dict[str, list[dict[str, Any]]]:
    """The ``inputs`` / ``outputs`` entries of a user encoder over ``max_len`` items with ``hidden`` units."""
    return {"inputs": [{"name": "history", "dtype": "int64", "shape": ["batch", int(max_len)]}],
            "outputs": [{"name": "user_vector", "dtype": "float32", "shape": ["batch", int(hidden)]}]}


def _fail(directory: Path, message: str) -> None:
    raise ManifestError(f"{directory / 'manifest.json'}: {message}")


def check_recommender(directory: Path, manifest: dict[str, Any]) -> None:
    """Check a recommender manifest's own keys and values (not the files: :func:`check_recommender_files`)."""
    missing = [key for key in RECOMMENDER_KEYS if key not in manifest]
    if missing:
        _fail(directory, f"missing keys {missing}")
    if manifest["format_version"] != 1:
        _fail(directory, f"format_version {manifest['format_version']!r} of a recommender must be 1")
    model = manifest["model"]
    if not isinstance(model, dict) or sorted(model) != sorted(MODEL_KEYS):
        _fail(directory, f"model must be an object with exactly {list(MODEL_KEYS)}, got {model!r}")
    for key in ("num_items", "max_len", "hidden"):
        if not isinstance(model[key], int) or isinstance(model[key], bool) or model[key] < 1:
            _fail(directory, f"model.{key} must be a positive integer, got {model[key]!r}")
    expected_io = recommender_io(model["max_len"], model["hidden"])
    for key in ("inputs", "outputs"):
        if manifest[key] != expected_io[key]:
            _fail(directory, f"{key} {manifest[key]!r} differ from {expected_io[key]!r}")
    rows = model["num_items"] + 1
    for key in ("item_table", "items", "popular", "models"):
        if not isinstance(manifest[key], dict):
            _fail(directory, f"{key} must be an object, got {manifest[key]!r}")
    table, items = manifest["item_table"], manifest["items"]
    if (table.get("shape"), table.get("dtype"), table.get("padding_row")) != ([rows, model["hidden"]], "float32", 0):
        _fail(directory, f"item_table must be float32 of shape [{rows}, {model['hidden']}] with padding_row 0, "
                         f"got {table!r}")
    if items.get("count") != model["num_items"]:
        _fail(directory, f"items.count must be model.num_items = {model['num_items']}, got {items!r}")
    models = manifest["models"]
    if list(models) != ["fp32"] or not isinstance(models["fp32"], dict):
        _fail(directory, f"models must list exactly fp32 (a recommender is exported in FP32), got {models!r}")
    files = manifest["files"]
    referenced = [models["fp32"].get("file"), table.get("file"), items.get("file"), manifest["popular"].get("file")]
    for name in referenced:
        if not isinstance(files, dict) or name not in files:
            _fail(directory, f"{name!r} is referenced but not listed in files")


def check_recommender_files(directory: Path, manifest: dict[str, Any]) -> None:
    """items.json, the item table and popular.json agree with a checked manifest (their sha256 were checked
    before: this is about an export assembled from files of different exports)."""
    rows = manifest["model"]["num_items"] + 1
    listed = read_json(directory / manifest["items"]["file"])
    ids = listed.get("ids") if isinstance(listed, dict) else None
    if not isinstance(ids, list) or len(ids) != rows or ids[:1] != [PAD_ID]:
        _fail(directory, f"{manifest['items']['file']} must hold {rows} ids, {PAD_ID!r} first")
    if ids_digest(ids) != manifest["items"].get("ids_sha256"):
        _fail(directory, f"the ids of {manifest['items']['file']} are not the item set the model was exported with "
                         "(ids_sha256 differs)")
    for key in ("titles", "tags"):
        if not isinstance(listed.get(key), list) or len(listed[key]) != rows:
            _fail(directory, f"{manifest['items']['file']}: {key} must hold one entry per id ({rows})")
    shape = np.load(directory / manifest["item_table"]["file"], mmap_mode="r", allow_pickle=False).shape
    if list(shape) != manifest["item_table"]["shape"]:
        _fail(directory, f"{manifest['item_table']['file']} has shape {list(shape)}, the manifest says "
                         f"{manifest['item_table']['shape']}")
    popular = read_json(directory / manifest["popular"]["file"])
    order = popular.get("order") if isinstance(popular, dict) else None
    if not isinstance(order, list) or sorted(order) != list(range(1, rows)):
        _fail(directory, f"{manifest['popular']['file']}: order must list every item index 1..{rows - 1} once")
