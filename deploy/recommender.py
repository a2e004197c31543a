"""Histories → recommended items with an exported next-item model (SASRec, GRU4Rec): no Paddle, no paddle_tag.

The export directory (``tools/export_model.py`` on a ``next_item`` checkpoint; manifest ``"kind": "recommender"``)::

    user_encoder.onnx  input "history" int64 [batch, max_len] (item indices, left-padded with 0), output
                       "user_vector" float32 [batch, hidden]
    item_table.npy     float32 [N + 1, hidden]: row i is item i's vector, row 0 the padding item
    items.json         {"ids": ["<pad>", ...], "titles": [...], "tags": [[...], ...]} in index order
    popular.json       {"order": [item index, ...], "counts": [...]}: most interactions first
    manifest.json      (+ paddle/, the static graph, unused here)

A history's known ids become indices (unknown ones are skipped and reported), its last ``max_len`` are
left-padded into the encoder, and the user vector searches the item table by inner product
(:class:`deploy.item_index.ItemIndex`) without the padding row or any item of the history. A history with no
known item gets the most popular items instead (``"fallback": "most_popular"``, scores = interaction counts).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy import DeployError
from deploy.export_dir import (
    MANIFEST,
    RECOMMENDER,
    ManifestError,
    listed_files,
    read_json,
    read_manifest_doc,
    require,
    safe_path,
    verify_files,
)
from deploy.item_index import ItemIndex
from deploy.providers import create_session

PAD_ID = "<pad>"
FALLBACK = "most_popular"
INPUT, OUTPUT = "history", "user_vector"


def ids_digest(ids: list[str]) -> str:
    """SHA-256 of the item ids in index order, computed as paddle_tag's exporter does (compact ASCII JSON)."""
    return hashlib.sha256(json.dumps(ids, ensure_ascii=True, separators=(",", ":")).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class RecommenderManifest:
    """A validated recommender export; paths are absolute."""

    root: Path
    model: dict[str, Any]
    encoder: Path
    table: Path
    items: Path
    popular: Path
    ids_sha256: str
    files: dict[str, str]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def num_items(self) -> int:
        return self.model["num_items"]

    @property
    def max_len(self) -> int:
        return self.model["max_len"]

    @property
    def hidden(self) -> int:
        return self.model["hidden"]


def _positive(doc: dict[str, Any], key: str, where: str) -> int:
    value = require(doc, key, int, where)
    if value < 1:
        raise ManifestError(f"{where}: {key} must be >= 1, got {value}")
    return value


def load_recommender_manifest(model_dir: str | os.PathLike[str], verify_hashes: bool = True) -> RecommenderManifest:
    """Read and check ``<model_dir>/manifest.json`` of a recommender export: the model's sizes, the encoder's
    declared input/output, the table's shape, and every listed file's presence and (``verify_hashes``) sha256."""
    root, doc = read_manifest_doc(model_dir)
    where = str(root / MANIFEST)
    if doc.get("kind") != RECOMMENDER:
        raise ManifestError(f"{where}: kind {doc.get('kind', 'tagger')!r} is not a recommender export")
    if require(doc, "format_version", int, where) != 1:
        raise ManifestError(f"{where}: recommender format_version {doc['format_version']} is not supported "
                            "(supported: 1)")
    model = require(doc, "model", dict, where)
    num_items, max_len, hidden = (_positive(model, key, f"{where} model") for key in ("num_items", "max_len", "hidden"))
    expected = {"inputs": [{"name": INPUT, "dtype": "int64", "shape": ["batch", max_len]}],
                "outputs": [{"name": OUTPUT, "dtype": "float32", "shape": ["batch", hidden]}]}
    for key, value in expected.items():
        if require(doc, key, list, where) != value:
            raise ManifestError(f"{where}: {key} {doc[key]!r} differ from {value!r}")
    models = require(doc, "models", dict, where)
    if list(models) != ["fp32"] or not isinstance(models["fp32"], dict):
        raise ManifestError(f"{where}: models must be exactly {{'fp32': {{'file': ...}}}}, got {models!r}")
    table = require(doc, "item_table", dict, where)
    if (table.get("shape"), table.get("dtype"), table.get("padding_row")) != ([num_items + 1, hidden], "float32", 0):
        raise ManifestError(f"{where}: item_table must be float32 [{num_items + 1}, {hidden}] with padding_row 0, "
                            f"got {table!r}")
    items = require(doc, "items", dict, where)
    if items.get("count") != num_items or not isinstance(items.get("ids_sha256"), str):
        raise ManifestError(f"{where}: items must say count {num_items} and ids_sha256, got {items!r}")
    popular = require(doc, "popular", dict, where)
    files = listed_files(root, doc, where)
    paths = {}
    for name, entry in (("encoder", models["fp32"]), ("table", table), ("items", items), ("popular", popular)):
        file_name = require(entry, "file", str, f"{where} {name}")
        if file_name not in files:
            raise ManifestError(f"{where}: {file_name} is not listed in 'files' (so it cannot be verified)")
        paths[name] = safe_path(root, file_name, where)
    verify_files(root, files, verify_hashes)
    return RecommenderManifest(root=root, model=dict(model), ids_sha256=items["ids_sha256"], files=files, raw=doc,
                               **paths)


def left_pad(histories: Sequence[np.ndarray], length: int) -> np.ndarray:
    """``(B, length)`` int64: each history's last ``length`` indices, right-aligned, 0 before them (as trained)."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, items in enumerate(histories):
        items = items[-length:]
        out[row, length - len(items):] = items
    return out


class Recommender:
    """A recommender export loaded for serving: ``predict([{"history": [...], "k": 10}, ...])``.

    ``threads``: ONNX Runtime's intra-op threads for the user encoder. ``search_threads``: faiss threads for the item
    search (None: all cores). One by default: on MovieLens-1M's 3,706 items a batch's search is a fraction of the
    encoder's cost, and more faiss threads compete with ONNX Runtime's for the same cores (2 threads made a
    16-history batch cost 3.3 ms per history instead of 1.2 on the 2-core build machine).
    """

    kind = RECOMMENDER

    def __init__(self, model_dir: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32",
                 threads: int | None = None, *, gpu_id: int = 0, max_batch_size: int = 32,
                 approximate_above: int = 100_000, search_threads: int | None = 1) -> None:
        if precision != "fp32":
            raise DeployError(f"--precision {precision}: a recommender export has an fp32 user encoder only")
        self.manifest = manifest = load_recommender_manifest(model_dir)
        self.device, self.precision = device, precision
        items = read_json(manifest.items)
        ids = items.get("ids") if isinstance(items, dict) else None
        rows = manifest.num_items + 1
        if not isinstance(ids, list) or len(ids) != rows or ids[0] != PAD_ID or ids_digest(ids) != manifest.ids_sha256:
            raise ManifestError(f"{manifest.items}: its ids are not the {manifest.num_items} items the model was "
                                f"exported with (count, {PAD_ID!r} first, or ids_sha256 differ)")
        self.ids: list[str] = ids
        self.titles: list[str] = items.get("titles") or [""] * rows
        self.tags: list[list[str]] = items.get("tags") or [[] for _ in range(rows)]
        if len(self.titles) != rows or len(self.tags) != rows:
            raise ManifestError(f"{manifest.items}: titles and tags must have one entry per id ({rows})")
        self.index_of = {item: i for i, item in enumerate(ids) if i > 0}
        self.popular_order, self.popular_counts = self._popular(read_json(manifest.popular))
        self.table = self._table()
        self.index = ItemIndex(self.table, approximate_above, skip_rows=[0], threads=search_threads)
        self.session = create_session(manifest.encoder, device, precision, threads, gpu_id=gpu_id,
                                      max_batch_size=max_batch_size, max_seq_len=manifest.max_len)
        self._check_session()
        self.warmup_inputs = [{"history": [ids[1]], "k": 1}]

    @property
    def num_items(self) -> int:
        return self.manifest.num_items

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def describe(self) -> dict[str, Any]:
        """What ``/ready`` reports about the model."""
        return {"model_dir": str(self.manifest.root), "model": self.manifest.model.get("name"),
                "num_items": self.num_items, "max_len": self.manifest.max_len}

    def _popular(self, doc: Any) -> tuple[np.ndarray, np.ndarray]:
        order, counts = (doc.get(key) if isinstance(doc, dict) else None for key in ("order", "counts"))
        if not isinstance(order, list) or sorted(order) != list(range(1, self.num_items + 1)) \
                or not isinstance(counts, list) or len(counts) != len(order):
            raise ManifestError(f"{self.manifest.popular}: order must list every item index 1..{self.num_items} "
                                "once, with one count each")
        return np.asarray(order, dtype=np.int64), np.asarray(counts, dtype=np.float64)

    def _table(self) -> np.ndarray:
        try:
            table = np.load(self.manifest.table, allow_pickle=False)
        except ValueError as exc:  # a pickled or damaged .npy
            raise ManifestError(f"{self.manifest.table}: not a plain .npy array ({exc})") from None
        expected = (self.num_items + 1, self.manifest.hidden)
        if table.dtype != np.float32 or table.shape != expected or not np.isfinite(table).all():
            raise ManifestError(f"{self.manifest.table}: expected finite float32 {list(expected)}, got {table.dtype} "
                                f"{list(table.shape)}")
        return table

    def _check_session(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT] or inputs[0].type != "tensor(int64)" \
                or OUTPUT not in [o.name for o in outputs]:
            raise ManifestError(f"{self.manifest.encoder}: expected input {INPUT!r} int64 and output {OUTPUT!r}, got "
                                f"{[(i.name, i.type) for i in inputs]} → {[o.name for o in outputs]}")
        probe = self.user_vectors([np.array([1], dtype=np.int64)])
        if probe.shape != (1, self.manifest.hidden):
            raise ManifestError(f"{self.manifest.encoder}: user_vector has shape {list(probe.shape)} for one history, "
                                f"expected [1, {self.manifest.hidden}]")

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, hidden)`` float32 user vectors of item-index histories (their last ``max_len`` items)."""
        (out,) = self.session.run([OUTPUT], {INPUT: left_pad(histories, self.manifest.max_len)})
        return np.asarray(out, dtype=np.float32)

    def predict(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per ``{"history": [item id, ...], "k": int}`` (``k`` in 1..N, checked by the caller):
        ``{"items": [{"id", "score", "title"?, "tags"?}], "unknown": [ids], "fallback": null | "most_popular",
        "truncated": bool}``. Items the history holds are never recommended; fewer than ``k`` come back only when
        the history holds nearly the whole catalogue."""
        known, unknown = [], []
        for request in requests:
            found = [self.index_of.get(item) for item in request["history"]]
            known.append(np.array([i for i in found if i is not None], dtype=np.int64))
            unknown.append(list(dict.fromkeys(item for item, i in zip(request["history"], found) if i is None)))
        answers: list[dict[str, Any]] = [{} for _ in requests]
        personal = [b for b, history in enumerate(known) if len(history)]
        if personal:
            vectors = self.user_vectors([known[b] for b in personal])
            k = max(requests[b]["k"] for b in personal)
            rows, scores = self.index.search(vectors, k, exclude=[np.unique(known[b]) for b in personal])
            for slot, b in enumerate(personal):
                kept = rows[slot, :requests[b]["k"]] >= 0
                answers[b] = self._answer(rows[slot, :requests[b]["k"]][kept], scores[slot, :requests[b]["k"]][kept],
                                          None)
        for b, request in enumerate(requests):
            if not len(known[b]):
                answers[b] = self._answer(self.popular_order[:request["k"]], self.popular_counts[:request["k"]],
                                          FALLBACK)
            answers[b].update(unknown=unknown[b], truncated=len(known[b]) > self.manifest.max_len)
        return answers

    def recommend(self, history: Sequence[str], k: int = 10) -> dict[str, Any]:
        """:meth:`predict` for one history."""
        if not 1 <= k <= self.num_items:
            raise DeployError(f"k must be between 1 and the catalogue size {self.num_items}, got {k}")
        return self.predict([{"history": list(history), "k": k}])[0]

    def _answer(self, rows: np.ndarray, scores: np.ndarray, fallback: str | None) -> dict[str, Any]:
        items = []
        for row, score in zip(rows.tolist(), scores.tolist()):
            item: dict[str, Any] = {"id": self.ids[row], "score": round(float(score), 4)}
            if self.titles[row]:
                item["title"] = self.titles[row]
            if self.tags[row]:
                item["tags"] = self.tags[row]
            items.append(item)
        return {"items": items, "fallback": fallback}
