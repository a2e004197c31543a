"""Users' interest in tag space: profiles from an interaction log and a ``next_item`` checkpoint, their next-tag hit
rates on the leave-one-out test split, and their storage with the tag database's tags.

The tags always come from the tag database (:class:`TagSpace`): either a taxonomy version whose items are the
log's items (a discovered taxonomy: an item's assigned tag), or -- when the log's items carry their own tags, as
MovieLens genres do -- a version registered from the log itself (``store.profiles.register_dataset``). The math is
:mod:`paddle_tag.metrics.tag_profiles`.

Next-tag hit rate: for each test user (history = all but the last item), the ranked tags of a profile are scored
against the tags of the held-out last item (hit@1, hit@3). Rows: the model's predicted profile; the history profile
(tag shares, optionally recency-weighted with a half-life chosen on the VALID split); the user's most frequent history
tags (an item counts 1 for each of its tags; ties to the lower tag key, i.e. the first name in key order); and the
tags most frequent over all test histories (one ranking for everybody, the popularity reference).

Stored profiles describe users now: they are computed from each user's whole sequence, not the test history.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from tqdm.auto import tqdm

from paddle_tag.data.sequences import InteractionData, read_interactions
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.store_edits import TagInfo
from paddle_tag.discover.taxonomy import Item
from paddle_tag.engine.checkpoint import checkpoint_kind, resolve_checkpoint
from paddle_tag.engine.tasks.next_item import WEIGHTS, load_next_item, score_histories
from paddle_tag.errors import ConfigError, ModelLoadError
from paddle_tag.metrics.tag_profiles import (history_profiles, next_item_distribution, next_tag_hits, tag_counts,
                                             tag_shares, top_tags)
from paddle_tag.models.sequential import NextItemModel
from paddle_tag.utils.io import read_json, sha256_file

#: half-lives (in items) tried on the valid split by ``half_life="auto"``; None = every history item alike
HALF_LIVES: tuple[Optional[float], ...] = (None, 100.0, 30.0, 10.0, 3.0, 1.0, 0.3)
HalfLife = Union[None, float, str]  # None, a half-life, or "auto"


@dataclass
class TagSpace:
    """A taxonomy version's tags (by key) and the log items' memberships ``(N + 1, K)`` (row 0 = padding)."""

    version_id: int
    tags: list[TagInfo]
    memberships: np.ndarray

    @property
    def names(self) -> list[str]:
        return [tag.name for tag in self.tags]


def tag_space(store: TagStore, data: InteractionData, version_id: Optional[int], data_dir: Path) -> TagSpace:
    """The tags of taxonomy version ``version_id`` (whose items must be the log's), or with None the log's own item
    tags, registered in the store as a dataset version (reused for the same items.jsonl)."""
    items = data.item_ids[1:]
    if version_id is None:
        if not data.tag_names:
            raise ConfigError(f"{data_dir / 'items.jsonl'}: items carry no tags; give a taxonomy version whose "
                              "items are the log's items instead")
        names = [[data.tag_names[t - 1] for t in row if t > 0] for row in data.item_tags[1:]]
        version_id = store.profiles.register_dataset(
            [Item(item_id=i, text=title) for i, title in zip(items, data.titles[1:])], names,
            {"source": "dataset", "data": str(data_dir), "items_sha256": sha256_file(data_dir / "items.jsonl")})
        tags, members = store.profiles.item_memberships(version_id, items, allow_untagged=True)
    else:
        tags, members = store.profiles.item_memberships(version_id, items)
    if not tags:
        raise ConfigError(f"taxonomy version {version_id} has no tags")
    return TagSpace(version_id, tags, np.vstack([np.zeros((1, len(tags))), members]))


def predicted_profiles(model: NextItemModel, histories: Sequence[np.ndarray], shares: np.ndarray,
                       batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """``(U, K)``: the model's next-item distribution (seen items masked) of each history, pushed to tags."""
    out = np.zeros((len(histories), shares.shape[1]))
    max_len = model.model_config()["max_len"]
    with tqdm(total=len(histories), desc="next-item scores", unit="user", disable=not progress) as bar:
        for start in range(0, len(histories), batch_size):
            batch = list(histories[start:start + batch_size])
            out[start:start + len(batch)] = next_item_distribution(score_histories(model, batch, max_len),
                                                                   batch) @ shares
            bar.update(len(batch))
    return out


def choose_half_life(data: InteractionData, space: TagSpace,
                     candidates: Sequence[Optional[float]] = HALF_LIVES) -> tuple[Optional[float], dict[str, float]]:
    """The half-life whose history profile has the best top-1 next-tag hit on the VALID split (ties: the earlier
    candidate, so uniform weights win a tie), and every candidate's valid hit@1 by name."""
    _, histories, targets = data.leave_one_out("valid")
    shares = tag_shares(space.memberships)
    hits = {}
    for half_life in candidates:
        ranked = top_tags(history_profiles(histories, shares, half_life), 1)
        hits[str(half_life)] = next_tag_hits(ranked, space.memberships[targets], ks=(1,))["hit@1"]
    best = max(candidates, key=lambda h: hits[str(h)])  # max keeps the first of equal values
    return best, hits


def next_tag_report(data: InteractionData, space: TagSpace, model: NextItemModel, half_life: Optional[float],
                    batch_size: int = 256, progress: bool = False) -> dict[str, dict[str, float]]:
    """Hit@1 / hit@3 (hit@K when fewer tags) of each ranking on the test split, by row name (see the module doc)."""
    _, histories, targets = data.leave_one_out("test")
    shares = tag_shares(space.memberships)
    k = min(3, shares.shape[1])
    pooled = tag_counts([np.concatenate(histories)], space.memberships)
    rankings = {
        "predicted": predicted_profiles(model, histories, shares, batch_size, progress),
        "history_profile": history_profiles(histories, shares, half_life),
        "most_frequent_history_tag": tag_counts(histories, space.memberships),
        "popular_tags": np.repeat(pooled, len(histories), axis=0),
    }
    return {name: next_tag_hits(top_tags(weights, k), space.memberships[targets], ks=sorted({1, k}))
            for name, weights in rankings.items()}


def user_profiles(checkpoint: str | os.PathLike, store: TagStore, data_dir: Optional[str | os.PathLike] = None,
                  version_id: Optional[int] = None, half_life: HalfLife = None, batch_size: int = 256,
                  progress: bool = False) -> dict:
    """Score the test split, then write every user's history and predicted profiles to ``store`` (each set in one
    transaction, replacing that version's previous set); return the figures and what was stored, JSON-able.

    ``data_dir`` defaults to the interaction log the checkpoint was trained on; ``half_life`` is None (uniform),
    a number of items, or ``"auto"`` (:func:`choose_half_life` on the valid split).
    """
    if half_life not in (None, "auto") and not (isinstance(half_life, (int, float)) and half_life > 0):
        raise ConfigError(f"half_life must be None, 'auto' or a positive number of items, got {half_life!r}")
    ckpt = resolve_checkpoint(checkpoint)
    kind = checkpoint_kind(ckpt)
    if kind != "next_item":
        raise ModelLoadError(f"{ckpt} is a {kind} checkpoint; user profiles need a next_item one")
    data_dir = Path(data_dir or read_json(ckpt / "checkpoint.json").get("train_path") or "")
    if not str(data_dir) or not data_dir.is_dir():
        raise ConfigError(f"interaction log not found: {data_dir!s} (give the log's directory)")
    data = read_interactions(data_dir)
    model = load_next_item(ckpt, data)
    space = tag_space(store, data, version_id, data_dir)
    valid_hits = None
    if half_life == "auto":
        half_life, valid_hits = choose_half_life(data, space)
    report = next_tag_report(data, space, model, half_life, batch_size, progress)

    shares = tag_shares(space.memberships)
    keys = [tag.key for tag in space.tags]
    params = {"data": str(data_dir), "users": len(data.user_ids), "history": "whole sequence"}
    history_set = store.profiles.write(space.version_id, "history", data.user_ids, keys,
                                       history_profiles(data.sequences, shares, half_life),
                                       params={**params, "half_life": half_life})
    model_id = f"{ckpt} sha256:{sha256_file(ckpt / WEIGHTS)}"
    predicted_set = store.profiles.write(space.version_id, "predicted", data.user_ids, keys,
                                         predicted_profiles(model, data.sequences, shares, batch_size, progress),
                                         model=model_id, params=params)
    return {"checkpoint": str(ckpt), "data": str(data_dir), "model": model.model_config()["name"],
            "store": store.where, "version_id": space.version_id, "tags": space.names,
            "half_life": half_life, "valid_half_life_hit@1": valid_hits, "test": report,
            "stored": {"history": history_set, "predicted": predicted_set, "users": len(data.user_ids)}}


ROW_NAMES = {"predicted": "predicted ({model})", "history_profile": "history profile (half-life {half_life})",
             "most_frequent_history_tag": "most frequent history tags", "popular_tags": "popular tags (everyone)"}


def format_report(result: dict) -> str:
    """The test hit rates of :func:`user_profiles` as a plain-text table."""
    rows = result["test"]
    ks = [key for key in next(iter(rows.values())) if key.startswith("hit@")]
    first = next(iter(rows.values()))
    lines = [f"next-tag hit rate, leave-one-out test: {first['users']} users, {len(result['tags'])} tags "
             f"(taxonomy version {result['version_id']})",
             f"{'ranking':<44}" + "".join(f"{k:>8}" for k in ks)]
    for name, figures in rows.items():
        label = ROW_NAMES.get(name, name).format(model=result["model"], half_life=result["half_life"])
        lines.append(f"{label:<44}" + "".join(f"{figures[k]:>8.4f}" for k in ks))
    return "\n".join(lines)
