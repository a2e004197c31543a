"""Real small recommender exports for the deploy/ tests (:class:`RecommenderKit`), built with numpy and onnx only.

The user encoder is a real ONNX graph over left-padded item indices ``history`` [batch, max_len]: Gather of the
item table → masked mean over the history (padding ignored) → MatMul → ``user_vector``. :func:`expected_top_k`
recomputes the recommendations with numpy, so the tests compare deploy against an independent brute force.
The files follow the contract ``tools/export_model.py`` writes for a ``next_item`` checkpoint (tests/export checks
a real one against deploy).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NUM_ITEMS = 40
HIDDEN = 8
MAX_LEN = 6
GENRES = ["喜剧", "动作", "科幻", "爱情"]


def item_ids(count: int = NUM_ITEMS) -> list[str]:
    """``<pad>`` then ``m1`` … ``m<count>``."""
    return ["<pad>"] + [f"m{i}" for i in range(1, count + 1)]


def build_encoder(path: Path, table: np.ndarray, weight: np.ndarray, max_len: int) -> None:
    """Write the ONNX user encoder: ``mean(table[history] over real items) @ weight``."""
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "weight"),
             numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
             numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
             numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")]
    nodes = [
        helper.make_node("Gather", ["table", "history"], ["rows"]),
        helper.make_node("Greater", ["history", "zero"], ["real"]),
        helper.make_node("Cast", ["real"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["rows", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["count1"]),
        helper.make_node("Div", ["summed", "count1"], ["mean"]),
        helper.make_node("MatMul", ["mean", "weight"], ["user_vector"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_user_encoder",
        [helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", max_len])],
        [helper.make_tensor_value_info("user_vector", TensorProto.FLOAT, ["batch", table.shape[1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def ids_sha256(ids: list[str]) -> str:
    """The manifest's ``items.ids_sha256`` (written out here, not imported: the fixture states the contract)."""
    return hashlib.sha256(json.dumps(ids, ensure_ascii=True, separators=(",", ":")).encode("ascii")).hexdigest()


def expected_top_k(table: np.ndarray, weight: np.ndarray, history: list[int], k: int,
                   max_len: int = MAX_LEN) -> tuple[list[int], list[float]]:
    """numpy brute force: the encoder's user vector over the last ``max_len`` items, the ``k`` best rows by inner
    product, never row 0 nor any item of the whole history (highest first, ties by row)."""
    user = table[history[-max_len:]].mean(axis=0) @ weight
    scores = table.astype(np.float64) @ user
    allowed = [row for row in range(1, len(table)) if row not in set(history)]
    best = sorted(allowed, key=lambda row: (-scores[row], row))[:k]
    return best, [float(scores[row]) for row in best]


class RecommenderKit:
    """Make recommender export directories and edit their manifests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def make(self, num_items: int = NUM_ITEMS, seed: int = 0, max_len: int = MAX_LEN) -> Path:
        """A complete, valid export with correct hashes; ``table.npy`` and ``weight`` recoverable via :meth:`arrays`."""
        self._count += 1
        out = self.root / f"recommender{self._count}"
        out.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        table = rng.normal(0.0, 1.0, (num_items + 1, HIDDEN)).astype(np.float32)
        table[0] = 0.0
        weight = (np.eye(HIDDEN) + rng.normal(0.0, 0.1, (HIDDEN, HIDDEN))).astype(np.float32)
        build_encoder(out / "user_encoder.onnx", table, weight, max_len)
        np.save(out / "item_table.npy", table, allow_pickle=False)
        np.save(self.root / f"weight{self._count}.npy", weight, allow_pickle=False)
        ids = item_ids(num_items)
        titles = [""] + [f"电影 {i}" if i % 5 else "" for i in range(1, num_items + 1)]  # some items untitled
        tags = [[]] + [[GENRES[i % len(GENRES)]] for i in range(1, num_items + 1)]
        (out / "items.json").write_text(json.dumps({"ids": ids, "titles": titles, "tags": tags}, ensure_ascii=False),
                                        encoding="utf-8")
        counts = np.arange(num_items, 0, -1) * 3 % 97  # a fixed, uneven popularity
        order = (np.argsort(-counts, kind="stable") + 1).tolist()
        (out / "popular.json").write_text(json.dumps({"order": order, "counts": sorted(counts.tolist())[::-1]}),
                                          encoding="utf-8")
        doc = {
            "format_version": 1, "kind": "recommender",
            "model": {"name": "tiny_mean", "num_items": num_items, "max_len": max_len, "hidden": HIDDEN,
                      "layers": 1, "heads": 1, "dropout": 0.0, "item_tags": False},
            "inputs": [{"name": "history", "dtype": "int64", "shape": ["batch", max_len]}],
            "outputs": [{"name": "user_vector", "dtype": "float32", "shape": ["batch", HIDDEN]}],
            "models": {"fp32": {"file": "user_encoder.onnx"}},
            "item_table": {"file": "item_table.npy", "dtype": "float32", "shape": [num_items + 1, HIDDEN],
                           "padding_row": 0},
            "items": {"file": "items.json", "count": num_items, "ids_sha256": ids_sha256(ids)},
            "popular": {"file": "popular.json", "counted_from": "tests/deploy fixture"},
            "files": {}, "parity": {}, "source": {"note": "tests/deploy fixture"}, "versions": {},
            "created": "2026-01-01T00:00:00Z",
        }
        self.write_manifest(out, doc)
        return out

    def arrays(self, export: Path) -> tuple[np.ndarray, np.ndarray]:
        """The item table and the encoder's weight of an export made by :meth:`make`."""
        number = int(export.name.removeprefix("recommender").split("_")[0])
        return np.load(export / "item_table.npy"), np.load(self.root / f"weight{number}.npy")

    @staticmethod
    def read_manifest(export: Path) -> dict[str, Any]:
        return json.loads((export / "manifest.json").read_text(encoding="utf-8"))

    @staticmethod
    def write_manifest(export: Path, doc: dict[str, Any], rehash: bool = True) -> None:
        """Write ``doc`` as the manifest; with ``rehash``, list every file but the manifest with its sha256."""
        if rehash:
            doc["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(export.iterdir())
                            if p.is_file() and p.name != "manifest.json"}
        (export / "manifest.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")

    def copy(self, export: Path) -> Path:
        """A fresh copy of an export directory (to tamper with), keeping its numbering for :meth:`arrays`."""
        out = self.root / f"{export.name}_copy{self._count}"
        self._count += 1
        shutil.copytree(export, out)
        return out
