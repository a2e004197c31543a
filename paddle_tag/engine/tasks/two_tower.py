"""Two-tower retrieval over behaviour sequences (``Data.modality: sequence``; ``Model.name: two_tower``).

Examples are every (user, history, next item) of the leave-one-out training sequences: the item at position
``t >= 1`` of a user's training sequence, after the ``Data.max_seq_len`` items before it; the Trainer shuffles them
each epoch. A batch's loss is :func:`~paddle_tag.models.two_tower.in_batch_softmax_loss`: each example's positive
against the other examples' positives (a duplicate of its own positive is not a negative), at
``Recommend.temperature``, with the log-Q correction (``Recommend.log_q``) by each item's share of the training
targets, the distribution in-batch negatives are drawn from.

Profile fields (``Recommend.profile_fields`` of ``users.jsonl``) are categorical: value ``k`` of a field's sorted
known values has index ``k + 1``, an unknown or missing value index 0. The known values are saved in the
checkpoint's ``model_config.json`` (``profile_vocab``), so an exported user encoder maps a profile the same way.

Evaluation is that of :mod:`.next_item`: full ranking on valid (NDCG@10 selects ``best/``); ``summary`` adds
``best/`` on test and the non-learned baselines, on the same users, by the same evaluator.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import paddle

from paddle_tag.config import Config
from paddle_tag.data.sequences import InteractionData, read_interactions
from paddle_tag.engine.feature_cache import feature_cache_dir
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.next_item import ITEMS, MODEL_CONFIG, WEIGHTS, RankingTask, left_pad, split_users
from paddle_tag.engine.title_vectors import title_vectors
from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.metrics.ranking import evaluate_ranking
from paddle_tag.models.serialization import load_weights
from paddle_tag.models.two_tower import TwoTowerModel, in_batch_softmax_loss
from paddle_tag.utils.io import read_json


def profile_vocab(users: list[dict[str, Any]], fields: list[str]) -> dict[str, list[str]]:
    """Each field's known values (as strings, sorted); :class:`DataError` for a field no user has."""
    vocab = {}
    for name in fields:
        values = sorted({str(u[name]) for u in users if u.get(name) is not None})
        if not values:
            raise DataError(f"profile field {name!r} is in no user's profile (users.jsonl); "
                            f"set Recommend.profile_fields to fields it has, or Recommend.user_profile=false")
        vocab[name] = values
    return vocab


def profile_ids(users: list[dict[str, Any]], vocab: dict[str, list[str]]) -> np.ndarray:
    """``(U, F)`` int64: value index + 1 per field, 0 for an unknown or missing value."""
    index = {name: {v: k + 1 for k, v in enumerate(values)} for name, values in vocab.items()}
    out = np.zeros((len(users), len(vocab)), dtype=np.int64)
    for row, user in enumerate(users):
        for col, name in enumerate(vocab):
            value = user.get(name)
            out[row, col] = 0 if value is None else index[name].get(str(value), 0)
    return out


class TrainingPairs:
    """Every (user, position ``t >= 1``) of the training sequences, gathered into left-padded batches."""

    def __init__(self, sequences: list[np.ndarray], max_len: int) -> None:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        self.items = np.concatenate([np.zeros(1, np.int64), *sequences])  # [0] first: padding gathers read it
        starts = 1 + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.user = np.repeat(np.arange(len(sequences)), np.maximum(lengths - 1, 0))
        self.position = np.concatenate([np.arange(1, n) for n in lengths]) if len(lengths) else lengths
        self.start = starts[self.user]
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.user)

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(histories (B, L), targets (B,), user rows (B,))`` of the examples ``indices``."""
        start, position = self.start[indices], self.position[indices]
        offsets = position[:, None] - self.max_len + np.arange(self.max_len)[None, :]
        history = self.items[np.where(offsets >= 0, start[:, None] + offsets, 0)]
        return history, self.items[start + position], self.user[indices]


class TwoTower(RankingTask):
    """Fits a :class:`TwoTowerModel` on the (history, next item) pairs of an interaction log."""

    kind = "two_tower"

    def __init__(self, config: Config, runtime: Runtime, model: TwoTowerModel, data: InteractionData,
                 vocab: dict[str, list[str]]) -> None:
        super().__init__(config, runtime, model)
        self.data, self.vocab = data, vocab
        self.profiles = profile_ids(data.users, vocab)
        train = data.leave_one_out("train")
        self.pairs = TrainingPairs(train, config.Data.max_seq_len)
        targets = np.concatenate([np.zeros(0, np.int64), *(s[1:] for s in train)])
        counts = np.bincount(targets, minlength=len(data.item_ids))
        # an item never a training target never is an in-batch column either: its log-Q is never read
        self.log_q = np.log(np.maximum(counts, 1) / max(counts.sum(), 1)).astype("float32")

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "TwoTower":
        data = read_interactions(config.Data.train_path)
        rec, m = config.Recommend, config.Model
        vocab = profile_vocab(data.users, rec.profile_fields) if rec.user_profile else {}
        titles = None
        if rec.title_vectors:
            titles = title_vectors(data, rec.title_model, feature_cache_dir(m.feature_cache) / "title_vectors",
                                   progress=config.Global.progress)
        model = TwoTowerModel(data.num_items, config.Data.max_seq_len, m.hidden_size, [len(v) for v in vocab.values()],
                              rec.temperature, rec.history_input, rec.pooling, rec.recent_items, m.dropout,
                              data.item_tags if rec.item_tags else None, titles)
        return cls(config, runtime, model, data, vocab)

    def num_examples(self) -> int:
        return len(self.pairs)

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        history, targets, users = self.pairs.batch(indices)
        positives = paddle.to_tensor(targets)
        with self.runtime.autocast():
            user_vectors = forward(paddle.to_tensor(history), paddle.to_tensor(self.profiles[users]))
            item_vectors = self.model.item_vectors(positives)
        log_q = paddle.to_tensor(self.log_q[targets]) if self.config.Recommend.log_q else None
        return in_batch_softmax_loss(user_vectors, item_vectors, positives, self.model.temperature, log_q)

    def rank(self, part: str) -> dict:
        return rank_two_tower(self.model, self.data, self.profiles, self.config, part)

    def saved_model_config(self) -> dict:
        return {**self.model.model_config(), "profile_vocab": self.vocab}


@paddle.no_grad()
def rank_two_tower(model: TwoTowerModel, data: InteractionData, profiles: np.ndarray, config: Config,
                   part: str) -> dict:
    """Full-ranking metrics of ``model`` on the ``part`` split ("valid" / "test"); ``profiles``: (U, F) ids."""
    rows, histories, targets = split_users(data, part, config.Recommend.eval_users)
    max_len = model.model_config()["max_len"]
    model.eval()

    def score(batch: np.ndarray) -> np.ndarray:
        history = paddle.to_tensor(left_pad([histories[i] for i in batch], max_len))
        return model.scores(history, paddle.to_tensor(profiles[rows[batch]])).astype("float32").numpy()

    return evaluate_ranking(score, histories, targets, data.num_items, batch_size=config.Data.eval_batch_size)


def load_two_tower(directory: str | os.PathLike, data: Optional[InteractionData] = None) -> tuple[TwoTowerModel, dict]:
    """The model of a ``two_tower`` checkpoint (eval mode) and its profile vocabulary; with ``data``, refused when
    it was trained on another item set. The checkpoint holds the tags and title vectors: no text encoder needed."""
    directory = Path(directory)
    saved = read_json(directory / ITEMS)["ids"]
    if data is not None and saved != data.item_ids:
        raise ModelLoadError(f"{directory} was trained on {len(saved) - 1} items that are not the "
                             f"{data.num_items} items of this interaction log (ids or their order differ)")
    meta = read_json(directory / MODEL_CONFIG)
    with paddle.utils.unique_name.guard():
        model = TwoTowerModel.from_model_config(meta)
    load_weights(model, directory / WEIGHTS)
    model.eval()
    return model, meta["profile_vocab"]
