"""Parity of a recommender export: the Paddle user encoder against ONNX Runtime on real histories.

Both see the same left-padded histories (the users of the test split, everything before their test item).
Figures: the largest |difference| of a user vector, and the share of users whose 10 recommended items are the
same set when each side's vectors search the exported item table (every item the user has seen, and the padding
row, excluded: what ``deploy/`` answers). FP32 must be within ``Export.fp32_atol`` with at least
:data:`MIN_TOP10_AGREEMENT` of the users given the same 10 items; exact identity is not required, because two
items whose scores differ by less than the FP32 noise may swap places at the 10th rank.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import paddle

from paddle_tag.engine.tasks.next_item import left_pad
from paddle_tag.errors import ParityError
from paddle_tag.models.sequential import NextItemModel

TOP_K = 10
MIN_TOP10_AGREEMENT = 0.99


@paddle.no_grad()
def paddle_user_vectors(model: NextItemModel, histories: list[np.ndarray], max_len: int,
                        batch_size: int = 256) -> np.ndarray:
    """``(U, H)`` float32 user vectors of Paddle (model in eval mode)."""
    model.eval()
    return np.concatenate([model.last_state(paddle.to_tensor(left_pad(histories[i:i + batch_size], max_len)))
                           .astype("float32").numpy() for i in range(0, len(histories), batch_size)])


def onnx_user_vectors(sess: Any, histories: list[np.ndarray], max_len: int, batch_size: int = 256) -> np.ndarray:
    """``(U, H)`` float32 user vectors of ONNX Runtime on the same batches."""
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: left_pad(histories[i:i + batch_size], max_len)})[0]
                           for i in range(0, len(histories), batch_size)]).astype("float32")


def top_items(users: np.ndarray, table: np.ndarray, histories: list[np.ndarray], k: int = TOP_K,
              batch_size: int = 1024) -> list[frozenset[int]]:
    """Each user's ``k`` best item indices by dot product with ``table`` (N + 1, H): row 0 and the items of the
    user's history never among them."""
    out: list[frozenset[int]] = []
    for start in range(0, len(users), batch_size):
        scores = users[start:start + batch_size] @ table.T
        scores[:, 0] = -np.inf
        for row, history in enumerate(histories[start:start + batch_size]):
            scores[row, history] = -np.inf
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out.extend(frozenset(row.tolist()) for row in best)
    return out


def compare_users(reference: np.ndarray, candidate: np.ndarray, table: np.ndarray,
                  histories: list[np.ndarray]) -> dict[str, Any]:
    """Parity figures of ``candidate`` user vectors (ONNX Runtime) against ``reference`` ones (Paddle)."""
    same = sum(a == b for a, b in zip(top_items(reference, table, histories), top_items(candidate, table, histories)))
    return {"split": "test", "users": int(len(reference)),
            "max_abs_diff": float(np.abs(reference.astype("float64") - candidate).max()),
            "top10_agreement": round(same / max(len(reference), 1), 6),
            "top10_identical": bool(same == len(reference))}


def require_recommender_fp32(figures: dict[str, Any], atol: float) -> None:
    """Raise :class:`ParityError` with the figures unless FP32 is within ``atol`` and the top-10 agree."""
    if figures["max_abs_diff"] > atol or figures["top10_agreement"] < MIN_TOP10_AGREEMENT:
        raise ParityError(f"FP32 ONNX does not reproduce the Paddle user encoder on {figures['users']} test users: "
                          f"max |user vector diff| {figures['max_abs_diff']:.3g} (allowed {atol:g}), same top-10 "
                          f"items for {100 * figures['top10_agreement']:.2f} % of the users (at least "
                          f"{100 * MIN_TOP10_AGREEMENT:g} % required); nothing was written")
