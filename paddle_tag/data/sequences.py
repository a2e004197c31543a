"""Per-user interaction sequences over tagged items (recommendation from tags) and the leave-one-out split.

A sequence folder (written by :mod:`paddle_tag.data.sources.movielens`, or by hand) holds
``items.jsonl`` (``{"id", "title"?, "tags"?}``), ``sequences.jsonl`` (``{"user", "items", "timestamps"?}``,
items in time order) and optionally ``users.jsonl`` (``{"id", ...profile fields}``).
:func:`read_interactions` turns it into :class:`InteractionData`, where item index 0 is the padding
item so that batches of histories can be zero-padded, and items are 1..N in items.jsonl order.

Leave-one-out (the fixed protocol of the recommendation experiments): for a user with ``n >= 3``
interactions ``s``, the test target is ``s[n-1]`` (history ``s[:n-1]``), the valid target ``s[n-2]``
(history ``s[:n-2]``) and the train sequence ``s[:n-2]``. Users with fewer than 3 interactions keep
their whole sequence in train and have no valid or test target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, overload

import numpy as np

from paddle_tag.data.readers import json_object  # the "file:line: invalid JSON" wording of the text readers
from paddle_tag.errors import ConfigError, DataError

PAD = "<pad>"
PARTS = ("train", "valid", "test")
#: Shortest sequence that gets a valid and a test target (one item must stay for training).
MIN_EVAL_LENGTH = 3


@dataclass
class InteractionData:
    """Items (index 0 = padding), their tags, users and their item-index sequences.

    ``item_tags[i]`` holds the tag ids + 1 of item ``i`` (0 pads the row; the padding item's row is all 0),
    ``users[u]`` the profile of ``user_ids[u]`` (``{}`` when users.jsonl lacks it), ``sequences[u]`` the
    read-only int64 item indices (1..N) of ``user_ids[u]`` in time order.
    """

    item_ids: list[str]
    item_index: dict[str, int]
    titles: list[str]
    tag_names: list[str]
    item_tags: np.ndarray
    user_ids: list[str]
    users: list[dict[str, Any]]
    sequences: list[np.ndarray]

    @property
    def num_items(self) -> int:
        """Number of real items N (indices 1..N; the padding item is not counted)."""
        return len(self.item_ids) - 1

    @overload
    def leave_one_out(self, part: Literal["train"]) -> list[np.ndarray]: ...

    @overload
    def leave_one_out(self, part: Literal["valid", "test"]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]: ...

    def leave_one_out(self, part: str) -> list[np.ndarray] | tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The leave-one-out split (see the module doc); arrays are read-only views of :attr:`sequences`.

        ``"train"``: one training sequence per user, aligned with :attr:`user_ids`.
        ``"valid"`` / ``"test"``: ``(user rows int64, histories, targets int64)`` for the users with at
        least 3 interactions, in user order.
        """
        if part not in PARTS:
            raise ConfigError(f"leave_one_out part must be one of {', '.join(PARTS)}, got {part!r}")
        if part == "train":
            return [s[:-2] if len(s) >= MIN_EVAL_LENGTH else s for s in self.sequences]
        held = 1 if part == "test" else 2  # items cut off the end: the target and whatever follows it
        rows = [u for u, s in enumerate(self.sequences) if len(s) >= MIN_EVAL_LENGTH]
        histories = [self.sequences[u][:-held] for u in rows]
        targets = np.array([self.sequences[u][-held] for u in rows], dtype=np.int64)
        return np.array(rows, dtype=np.int64), histories, targets


def _json_rows(path: Path, expected: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("file:line", object)`` for each non-blank line; :class:`DataError` for a missing file or bad JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    # split on "\n" only: JSON strings written with ensure_ascii=False may hold U+2028 etc.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        yield where, json_object(raw, where, expected)


def _string(obj: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise DataError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _strings(obj: dict[str, Any], key: str, where: str, required: bool) -> list[str]:
    if key not in obj and not required:
        return []
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: {key!r} must be a list of strings, got {value!r}")
    return value


def read_interactions(directory: str | os.PathLike[str]) -> InteractionData:
    """Read items.jsonl, sequences.jsonl and (if present) users.jsonl of ``directory``.

    Raises :class:`DataError` naming the file and line for a missing file, invalid JSON, a duplicate
    item or user id, an empty sequence, or an item in sequences.jsonl that items.jsonl lacks.
    """
    folder = Path(directory)
    item_ids, titles, tags = [PAD], [""], [[]]
    item_index: dict[str, int] = {}
    for where, row in _json_rows(folder / "items.jsonl", 'an "id"'):
        iid = _string(row, "id", where)
        if iid == PAD:
            raise DataError(f"{where}: the item id {PAD!r} is reserved for padding")
        if iid in item_index:
            raise DataError(f"{where}: duplicate item id {iid!r}")
        item_index[iid] = len(item_ids)
        item_ids.append(iid)
        titles.append(_string(row, "title", where, default=""))
        tags.append(list(dict.fromkeys(_strings(row, "tags", where, required=False))))
    if not item_index:
        raise DataError(f"{folder / 'items.jsonl'}: no items")

    tag_names = sorted({t for item_tags in tags for t in item_tags})
    tag_id = {t: k + 1 for k, t in enumerate(tag_names)}  # +1: 0 pads the rows
    matrix = np.zeros((len(item_ids), max(1, max(len(t) for t in tags))), dtype=np.int64)
    for i, item_tags in enumerate(tags):
        matrix[i, :len(item_tags)] = [tag_id[t] for t in item_tags]

    profiles: dict[str, dict[str, Any]] = {}
    if (folder / "users.jsonl").exists():
        for where, row in _json_rows(folder / "users.jsonl", 'an "id"'):
            uid = _string(row, "id", where)
            if uid in profiles:
                raise DataError(f"{where}: duplicate user id {uid!r}")
            profiles[uid] = {k: v for k, v in row.items() if k != "id"}

    user_ids: list[str] = []
    sequences: list[np.ndarray] = []
    seen: set[str] = set()
    for where, row in _json_rows(folder / "sequences.jsonl", '"user" and "items"'):
        uid = _string(row, "user", where)
        items = _strings(row, "items", where, required=True)
        if uid in seen:
            raise DataError(f"{where}: duplicate user {uid!r}")
        if not items:
            raise DataError(f"{where}: user {uid!r} has no items")
        if "timestamps" in row and (not isinstance(row["timestamps"], list) or len(row["timestamps"]) != len(items)):
            raise DataError(f"{where}: 'timestamps' must be a list as long as 'items' ({len(items)})")
        missing = next((i for i in items if i not in item_index), None)
        if missing is not None:
            raise DataError(f"{where}: item {missing!r} is not in {folder / 'items.jsonl'}")
        seq = np.fromiter((item_index[i] for i in items), dtype=np.int64, count=len(items))
        seq.flags.writeable = False  # leave_one_out hands out views: keep callers from editing the data
        seen.add(uid)
        user_ids.append(uid)
        sequences.append(seq)
    if not user_ids:
        raise DataError(f"{folder / 'sequences.jsonl'}: no users")
    return InteractionData(item_ids=item_ids, item_index=item_index, titles=titles, tag_names=tag_names,
                           item_tags=matrix, user_ids=user_ids, users=[profiles.get(u, {}) for u in user_ids],
                           sequences=sequences)
