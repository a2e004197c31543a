"""Next-item prediction over behaviour sequences (``Data.modality: sequence``; ``Model.name: sasrec | gru4rec``).

Training follows the fixed protocol of :meth:`~paddle_tag.data.sequences.InteractionData.leave_one_out`: a user's
last item is the test target, the one before it the valid target, the rest is the training sequence. Each step
takes a batch of users' training sequences (their last ``Data.max_seq_len`` items, left-padded), and every
position predicts the item after it with full-softmax cross-entropy over all items (no sampled negatives).

Evaluation ranks every item for each valid user (:mod:`paddle_tag.metrics.ranking`: full ranking, the user's
earlier items masked, ties counted as their expected value under a random order); NDCG@10 selects ``best/``.
After training, ``best/`` is scored on the test split, beside the non-learned baselines fitted on the same data
(:mod:`paddle_tag.metrics.baselines`), and both go into the run's ``metrics.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from safetensors.numpy import save_file

from paddle_tag.config import Config
from paddle_tag.data.sequences import InteractionData, read_interactions
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.base import Task
from paddle_tag.errors import ModelLoadError
from paddle_tag.metrics.baselines import BASELINES
from paddle_tag.metrics.ranking import evaluate_ranking
from paddle_tag.models.sequential import NextItemModel
from paddle_tag.models.serialization import load_weights, state_to_numpy
from paddle_tag.utils.io import atomic_write_json, read_json

WEIGHTS, MODEL_CONFIG, ITEMS = "model.safetensors", "model_config.json", "items.json"


def left_pad(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """``(B, length)`` int64: each sequence's last ``length`` items, right-aligned, 0 before them."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, items in enumerate(sequences):
        items = items[-length:]
        if len(items):
            out[row, length - len(items):] = items
    return out


@paddle.no_grad()
def score_histories(model: NextItemModel, histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """Scores ``(B, N + 1)`` of every item as the next one after each history (model left in its mode)."""
    return model.scores(paddle.to_tensor(left_pad(histories, max_len))).astype("float32").numpy()


def split_users(data: InteractionData, part: str, max_users: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The ``part`` ("valid" / "test") user rows, histories and targets, at most ``max_users`` of them (a fixed
    sample, the same for every model and baseline)."""
    rows, histories, targets = data.leave_one_out(part)
    if 0 < max_users < len(targets):
        keep = np.sort(np.random.default_rng(0).choice(len(targets), max_users, replace=False))
        rows, histories, targets = rows[keep], [histories[i] for i in keep], targets[keep]
    return rows, histories, targets


def split_for(data: InteractionData, part: str, max_users: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The ``part`` histories and targets of :func:`split_users`."""
    _, histories, targets = split_users(data, part, max_users)
    return histories, targets


class RankingTask(Task):
    """What every recommender task shares: its checkpoint files, evaluation on valid, and the test split beside
    every baseline by the one evaluator. A subclass says how its model ranks a split (:meth:`rank`)."""

    best_metric = "ndcg@10"
    shown_metrics = ("hit@10", "ndcg@10", "mrr@10", "hit@50")
    data: InteractionData

    def rank(self, part: str) -> dict:
        """Full-ranking metrics of the model on the ``part`` split ("valid" / "test")."""
        raise NotImplementedError

    def saved_model_config(self) -> dict:
        """What ``model_config.json`` holds: enough to rebuild the model."""
        return self.model.model_config()

    def evaluate(self, step: int) -> dict:
        try:
            return self.rank("valid")
        finally:
            self.model.train()

    def write_weights(self, directory: Path, training: bool) -> None:
        save_file(state_to_numpy(self.model), str(directory / WEIGHTS))
        atomic_write_json(directory / MODEL_CONFIG, self.saved_model_config())
        atomic_write_json(directory / ITEMS, {"ids": self.data.item_ids, "tag_names": self.data.tag_names})

    def restore_weights(self, directory: Path) -> None:
        load_weights(self.model, directory / WEIGHTS)

    def summary(self, out: Path, best_step: Optional[int]) -> dict:
        """``best/`` on the test split, and every baseline on valid and test, by the same evaluator."""
        result: dict = {"model": self.config.Model.name}
        if best_step is not None:
            load_weights(self.model, out / "best" / WEIGHTS)
            result["test"] = self.rank("test")
            result["baselines"] = rank_baselines(self.data, self.config)
        return result


class NextItem(RankingTask):
    """Fits a :class:`NextItemModel` on the training sequences of an interaction log."""

    kind = "next_item"

    def __init__(self, config: Config, runtime: Runtime, model: NextItemModel, data: InteractionData) -> None:
        super().__init__(config, runtime, model)
        self.data = data
        self.train = [s for s in data.leave_one_out("train") if len(s) >= 2]  # one next item at least
        self.max_len = config.Data.max_seq_len

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "NextItem":
        data = read_interactions(config.Data.train_path)
        m = config.Model
        model = NextItemModel(m.name, len(data.item_ids) - 1, config.Data.max_seq_len, m.hidden_size, m.num_layers,
                              m.num_heads, m.dropout, data.item_tags if config.Recommend.item_tags else None)
        return cls(config, runtime, model, data)

    def num_examples(self) -> int:
        return len(self.train)

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        batch = [self.train[i] for i in indices]
        inputs = paddle.to_tensor(left_pad([s[:-1] for s in batch], self.max_len))
        targets = left_pad([s[1:] for s in batch], self.max_len).reshape(-1)
        rows = paddle.to_tensor(np.flatnonzero(targets))  # positions that have a next item
        with self.runtime.autocast():
            states = forward(inputs)
            states = paddle.gather(states.reshape([-1, states.shape[-1]]), rows)
            logits = paddle.matmul(states, self.model.item_table(), transpose_y=True).astype("float32")
        logits = logits - F.one_hot(paddle.zeros([1], "int64"), logits.shape[1]) * 1e9  # never the padding item
        return F.cross_entropy(logits, paddle.to_tensor(targets[targets > 0]))

    def rank(self, part: str) -> dict:
        return rank_model(self.model, self.data, self.config, part)


def rank_model(model: NextItemModel, data: InteractionData, config: Config, part: str) -> dict:
    """Full-ranking metrics of ``model`` on the ``part`` split ("valid" / "test")."""
    histories, targets = split_for(data, part, config.Recommend.eval_users)
    max_len = config.Data.max_seq_len
    model.eval()
    return evaluate_ranking(lambda rows: score_histories(model, [histories[i] for i in rows], max_len), histories,
                            targets, len(data.item_ids) - 1, batch_size=config.Data.eval_batch_size)


def rank_baselines(data: InteractionData, config: Config) -> dict:
    """Each baseline fitted on what precedes the targets (the training sequences for valid, the test histories,
    which end with the valid item, for test), scored by the same evaluator: ``{name: {"valid", "test"}}``."""
    scores: dict = {}
    for part in ("valid", "test"):
        before = data.leave_one_out("train") if part == "valid" else data.leave_one_out("test")[1]
        histories, targets = split_for(data, part, config.Recommend.eval_users)
        for name, baseline in BASELINES.items():
            options = {"recent": config.Recommend.knn_recent} if name == "item_knn" else {}
            fitted = baseline(**options).fit(before, len(data.item_ids) - 1)
            scores.setdefault(name, {})[part] = evaluate_ranking(
                lambda rows: fitted.score([histories[i] for i in rows]), histories, targets,
                len(data.item_ids) - 1, batch_size=config.Data.eval_batch_size)
    return scores


def load_next_item(directory: Path, data: InteractionData) -> NextItemModel:
    """The model of a ``next_item`` checkpoint, refused when it was trained on another item set than ``data``."""
    saved = read_json(directory / ITEMS)
    if saved["ids"] != data.item_ids:
        raise ModelLoadError(f"{directory} was trained on {len(saved['ids']) - 1} items that are not the "
                             f"{len(data.item_ids) - 1} items of this interaction log (ids or their order differ)")
    meta = read_json(directory / MODEL_CONFIG)
    model = NextItemModel(meta["name"], meta["num_items"], meta["max_len"], meta["hidden"], meta["layers"],
                          meta["heads"], meta["dropout"], data.item_tags if meta["item_tags"] else None)
    load_weights(model, directory / WEIGHTS)
    model.eval()
    return model
