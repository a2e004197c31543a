"""Export a ``next_item`` checkpoint (SASRec, GRU4Rec) for ``deploy/``'s ``POST /recommend``.

Written into the temporary directory the exporter swaps in (:func:`paddle_tag.export.export_checkpoint`):
the user encoder as ONNX (left-padded history → the state after its last item, as
:meth:`~paddle_tag.models.sequential.NextItemModel.last_state`), its Paddle static graph, the item table
``(N + 1, H)`` float32 as ``.npy``, ``items.json`` (ids, titles, tags in index order), ``popular.json`` (the
answer to an empty history) and ``manifest.json`` (:mod:`paddle_tag.export.recommend_manifest`), after parity
on the test split (:mod:`paddle_tag.export.recommend_parity`).

FP32 only: the encoder is small (ML-1M GRU4Rec: 2.3 MB, its input item vectors included) and one user costs
about a millisecond on one CPU core, while an FP16 / INT8 user vector would reorder near-tied items for little gain.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import paddle

from paddle_tag.config import Config
from paddle_tag.data.sequences import InteractionData, read_interactions
from paddle_tag.engine.tasks.next_item import load_next_item
from paddle_tag.errors import ConfigError
from paddle_tag.export.fusion import remove_dead_nodes
from paddle_tag.export.onnx_convert import check, fold_constants, load_model, paddle_to_onnx, rename_io, session
from paddle_tag.export.recommend_manifest import PAD_ID, RECOMMENDER, ids_digest, recommender_io
from paddle_tag.export.recommend_parity import (compare_users, onnx_user_vectors, paddle_user_vectors,
                                                require_recommender_fp32)
from paddle_tag.export.manifest import write_manifest
from paddle_tag.export.static import save_static
from paddle_tag.models.sequential import NextItemModel
from paddle_tag.utils.io import atomic_write_json, sha256_file

ENCODER_FILE, TABLE_FILE, ITEMS_FILE, POPULAR_FILE = "user_encoder.onnx", "item_table.npy", "items.json", "popular.json"
INPUT_NAME, OUTPUT_NAME = "history", "user_vector"
STATIC_DIR = "paddle"


class UserEncoder(paddle.nn.Layer):
    """The exported graph: item indices ``(B, max_len)``, left-padded with 0 → user vectors ``(B, H)``."""

    def __init__(self, model: NextItemModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, history: paddle.Tensor) -> paddle.Tensor:
        return self.model.last_state(history)


@dataclass
class RecommenderSource:
    """A loaded ``next_item`` checkpoint and the interaction log it was trained on."""

    model: NextItemModel
    data: InteractionData
    directory: Path
    interactions: str


def load_recommender(config: Config, ckpt_dir: Path) -> RecommenderSource:
    """The checkpoint's model over ``Data.train_path``; refused when that log holds another item set."""
    path = config.Data.train_path
    if not path or not Path(path).is_dir():
        raise ConfigError(f"a next_item export reads the interaction log it was trained on: Data.train_path={path!r} "
                          "is not a folder (set -o Data.train_path=<folder with items.jsonl>)")
    data = read_interactions(path)
    return RecommenderSource(load_next_item(ckpt_dir, data), data, ckpt_dir, str(path))


def encoder_onnx(model: NextItemModel, static_dir: Path, opset: int) -> onnx.ModelProto:
    """Static graph of :class:`UserEncoder` → ONNX with the contract's names, folded, checked."""
    max_len = model.config["max_len"]
    spec = paddle.static.InputSpec(shape=[None, max_len], dtype="int64", name=INPUT_NAME)
    model_json, params = save_static(UserEncoder(model), static_dir, specs=[spec])
    onnx_model = load_model(paddle_to_onnx(model_json, params, opset))
    rename_io(onnx_model, (INPUT_NAME,), OUTPUT_NAME)
    onnx_model = fold_constants(onnx_model)
    remove_dead_nodes(onnx_model)
    onnx_model.producer_name = "paddle_tag (paddle2onnx + onnxruntime basic folding)"
    check(onnx_model)
    return onnx_model


def popularity(data: InteractionData) -> dict[str, list[int]]:
    """Every item index, most interactions in the log first (ties: index order), with the counts."""
    counts = np.bincount(np.concatenate(data.sequences), minlength=len(data.item_ids))
    order = np.argsort(-counts[1:], kind="stable") + 1
    return {"order": order.tolist(), "counts": counts[order].tolist()}


def items_document(data: InteractionData) -> dict[str, list]:
    """items.json: ids, titles and tag names, in index order (index 0 the padding item)."""
    tags = [[data.tag_names[t - 1] for t in row if t > 0] for row in data.item_tags]
    return {"ids": list(data.item_ids), "titles": list(data.titles), "tags": tags}


def write_recommender_export(tmp: Path, config: Config, source: RecommenderSource, versions: dict[str, str]) -> None:
    """Write every file of the export into ``tmp`` (the caller swaps it into place); parity first refuses."""
    model, data = source.model, source.data
    if data.item_ids[0] != PAD_ID:
        raise ConfigError(f"{source.interactions}: item index 0 must be the padding item {PAD_ID!r}")
    onnx.save(encoder_onnx(model, tmp / STATIC_DIR, config.Export.opset), str(tmp / ENCODER_FILE))
    with paddle.no_grad():
        table = model.item_table().astype("float32").numpy()
    np.save(tmp / TABLE_FILE, table, allow_pickle=False)
    atomic_write_json(tmp / ITEMS_FILE, items_document(data))
    atomic_write_json(tmp / POPULAR_FILE, popularity(data))

    _, histories, _ = data.leave_one_out("test")
    max_len = model.config["max_len"]
    reference = paddle_user_vectors(model, histories, max_len)
    figures = compare_users(reference, onnx_user_vectors(session(tmp / ENCODER_FILE), histories, max_len), table,
                            histories)
    require_recommender_fp32(figures, config.Export.fp32_atol)
    write_manifest(tmp, {
        "format_version": 1, "kind": RECOMMENDER, "model": model.model_config(),
        **recommender_io(max_len, model.config["hidden"]),
        "models": {"fp32": {"file": ENCODER_FILE}},
        "item_table": {"file": TABLE_FILE, "dtype": "float32", "shape": list(table.shape), "padding_row": 0},
        "items": {"file": ITEMS_FILE, "count": data.num_items, "ids_sha256": ids_digest(data.item_ids)},
        "popular": {"file": POPULAR_FILE, "counted_from": f"every interaction of {source.interactions}"},
        "parity": {"fp32": figures},
        "source": {"checkpoint": str(source.directory.resolve()),
                   "config_sha256": sha256_file(source.directory / "config.yaml"),
                   "interactions": str(Path(source.interactions).resolve())},
        "versions": versions, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
