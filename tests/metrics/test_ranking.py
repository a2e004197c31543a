"""Tests for paddle_tag.metrics.ranking: full-ranking next-item metrics with exact expected-value tie handling."""

import sys
import time

import numpy as np
import pytest

from paddle_tag.metrics import ranking
from paddle_tag.metrics.ranking import evaluate_ranking, ranking_metrics, target_ranks

LOG2 = np.log2


def reference_metrics(greater, ties, ks):
    """Slow, obvious version: average the gain over every rank the target can take, row by row."""
    out = {}
    for k in ks:
        sums = {"hit": 0.0, "ndcg": 0.0, "mrr": 0.0}
        for g, t in zip(greater, ties):
            for r in range(g + 1, g + t + 2):
                if r <= k:
                    sums["hit"] += 1.0 / (t + 1)
                    sums["ndcg"] += 1.0 / LOG2(r + 1) / (t + 1)
                    sums["mrr"] += 1.0 / r / (t + 1)
        out.update({f"{name}@{k}": value / len(greater) for name, value in sums.items()})
    return out


# ---------------------------------------------------------------- target_ranks


def test_ranks_with_ties_by_hand():
    # items 1..5; target 2 scores 0.5: item 1 beats it, items 3 and 5 tie; padding column 0 scores highest.
    scores = np.array([[9.0, 0.9, 0.5, 0.5, 0.1, 0.5]])
    greater, ties = target_ranks(scores, np.array([2]), [np.array([], dtype=np.int64)])
    assert greater.tolist() == [1] and ties.tolist() == [2]
    assert greater.dtype == np.int64 and ties.dtype == np.int64


def test_history_items_are_masked():
    scores = np.array([[9.0, 0.9, 0.5, 0.5, 0.1, 0.5]])
    greater, ties = target_ranks(scores, np.array([2]), [np.array([1, 3])])
    assert greater.tolist() == [0] and ties.tolist() == [1]  # only item 5 is left tying


def test_target_in_history_is_not_masked():
    scores = np.array([[0.0, 0.9, 0.5, 0.7, 0.1]])
    greater, ties = target_ranks(scores, np.array([2]), [np.array([2, 1, 2])])
    assert greater.tolist() == [1] and ties.tolist() == [0]  # item 3 beats it; item 1 masked; 2 still ranked
    assert ranking_metrics(greater, ties, ks=(1, 2))["hit@2"] == 1.0


def test_rows_are_independent():
    scores = np.array([[0.0, 3.0, 2.0, 1.0], [0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    greater, ties = target_ranks(scores, np.array([3, 1, 3]), [np.array([1]), np.array([], dtype=int), np.array([2])])
    assert greater.tolist() == [1, 0, 0]
    assert ties.tolist() == [0, 2, 0]


def test_nan_names_the_row():
    scores = np.zeros((3, 5))
    scores[1, 4] = np.nan
    with pytest.raises(ValueError, match="row 1"):
        target_ranks(scores, np.array([1, 1, 1]), [np.array([], dtype=int)] * 3)


@pytest.mark.parametrize(
    "targets, exclude",
    [
        (np.array([0]), [np.array([], dtype=int)]),  # the padding item is no target
        (np.array([5]), [np.array([], dtype=int)]),  # beyond N = 4
        (np.array([1]), [np.array([7])]),  # exclude out of range
        (np.array([1, 2]), [np.array([], dtype=int)]),  # more targets than rows
        (np.array([1.0]), [np.array([], dtype=int)]),  # float item ids
    ],
)
def test_bad_inputs(targets, exclude):
    with pytest.raises(ValueError):
        target_ranks(np.zeros((1, 5)), targets, exclude)


def test_integer_and_infinite_scores():
    greater, ties = target_ranks(np.array([[0, 5, 5, 1]]), np.array([1]), [np.array([], dtype=int)])
    assert (greater.tolist(), ties.tolist()) == ([0], [1])
    greater, ties = target_ranks(np.array([[0.0, np.inf, -np.inf, np.inf]]), np.array([1]), [np.array([], dtype=int)])
    assert (greater.tolist(), ties.tolist()) == ([0], [1])


def test_target_ranks_is_vectorised():
    """(256, 3707), MovieLens-1M sized: no Python-level work per item, and fast."""
    rng = np.random.default_rng(0)
    b, n = 256, 3706
    scores = rng.standard_normal((b, n + 1)).astype(np.float32)
    targets = rng.integers(1, n + 1, size=b)
    exclude = [rng.choice(np.arange(1, n + 1), size=int(rng.integers(20, 400)), replace=False) for _ in range(b)]

    lines = 0

    def tracer(frame, event, arg):  # count the executed lines of ranking.py only
        nonlocal lines
        if frame.f_code.co_filename != ranking.__file__:
            return None
        if event == "line":
            lines += 1
        return tracer

    sys.settrace(tracer)
    try:
        greater, ties = target_ranks(scores, targets, exclude)
    finally:
        sys.settrace(None)
    assert lines < 4 * b  # a loop over items would run >= b * n = 948,736 lines
    start = time.perf_counter()
    target_ranks(scores, targets, exclude)
    assert time.perf_counter() - start < 2.0  # about 20 ms; generous for a busy CI machine

    # and the same answer as a row-by-row reference
    for i in range(0, b, 37):
        keep = np.ones(n + 1, dtype=bool)
        keep[0] = False
        keep[exclude[i]] = False
        keep[targets[i]] = False
        t = scores[i, targets[i]]
        assert greater[i] == np.sum(scores[i, keep] > t) and ties[i] == np.sum(scores[i, keep] == t)


# ---------------------------------------------------------------- ranking_metrics


def test_expected_metrics_by_hand():
    # greater 1, ties 2: rank uniform on {2, 3, 4}
    m = ranking_metrics(np.array([1]), np.array([2]), ks=(1, 3, 10))
    assert m["hit@1"] == 0.0 and m["ndcg@1"] == 0.0 and m["mrr@1"] == 0.0
    assert m["hit@3"] == pytest.approx(2 / 3, rel=1e-15)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 3, rel=1e-15)
    assert m["ndcg@3"] == pytest.approx((1 / LOG2(3) + 1 / LOG2(4)) / 3, rel=1e-15)
    assert m["hit@10"] == 1.0
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3, rel=1e-15)
    assert m["ndcg@10"] == pytest.approx((1 / LOG2(3) + 1 / LOG2(4) + 1 / LOG2(5)) / 3, rel=1e-15)


def test_default_keys():
    m = ranking_metrics(np.array([0]), np.array([0]))
    assert list(m) == ["hit@10", "ndcg@10", "mrr@10", "hit@50", "ndcg@50", "mrr@50"]
    assert all(v == 1.0 and isinstance(v, float) for v in m.values())  # rank 1 without ties: perfect


def test_matches_reference_on_random_counts():
    rng = np.random.default_rng(1)
    greater = rng.integers(0, 60, size=200)
    ties = np.where(rng.random(200) < 0.5, 0, rng.integers(0, 80, size=200))
    got = ranking_metrics(greater, ties, ks=(1, 5, 10, 50))
    want = reference_metrics(greater, ties, ks=(1, 5, 10, 50))
    assert got.keys() == want.keys()
    for key in got:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key


@pytest.mark.parametrize(
    "greater, ties, ks", [([], [], (10,)), ([-1], [0], (10,)), ([0], [0], (0,)), ([0, 1], [0], (10,))]
)
def test_metrics_bad_inputs(greater, ties, ks):
    with pytest.raises(ValueError):
        ranking_metrics(np.array(greater, dtype=int), np.array(ties, dtype=int), ks)


# ---------------------------------------------------------------- evaluate_ranking


def make_users(rng, num_users, num_items):
    histories = [rng.choice(np.arange(1, num_items + 1), size=int(rng.integers(0, 30)), replace=False)
                 for _ in range(num_users)]
    targets = np.array([rng.choice(np.setdiff1d(np.arange(1, num_items + 1), h)) for h in histories])
    return histories, targets


def test_constant_scorer_gets_the_random_value_exactly():
    n = 3706
    history = np.arange(1, 201)  # 200 masked items: 3506 candidates
    m = evaluate_ranking(lambda idx: np.zeros((idx.size, n + 1)), [history], np.array([500]), n)
    candidates = n - history.size
    assert m["hit@10"] == 10 / candidates and m["hit@50"] == 50 / candidates  # exact, not approximate
    assert m["mrr@10"] == pytest.approx(sum(1 / r for r in range(1, 11)) / candidates, rel=1e-14)
    assert m["ndcg@50"] == pytest.approx(sum(1 / LOG2(r + 1) for r in range(1, 51)) / candidates, rel=1e-14)
    assert m["users"] == 1


def test_constant_scorer_averages_over_users():
    rng = np.random.default_rng(2)
    n = 100
    histories, targets = make_users(rng, 40, n)
    m = evaluate_ranking(lambda idx: np.ones((idx.size, n + 1)), histories, targets, n, batch_size=7)
    candidates = np.array([n - len(h) for h in histories])
    assert m["hit@10"] == pytest.approx(np.mean(10 / candidates), rel=1e-14)
    assert m["hit@50"] == pytest.approx(np.mean(np.minimum(50, candidates) / candidates), rel=1e-14)


def test_perfect_scorer_gets_one():
    rng = np.random.default_rng(3)
    n = 50
    histories, targets = make_users(rng, 30, n)

    def perfect(idx):
        scores = rng.random((idx.size, n + 1))
        scores[np.arange(idx.size), targets[idx]] = 2.0
        return scores

    m = evaluate_ranking(perfect, histories, targets, n, batch_size=8, progress=True)
    assert m.pop("users") == 30
    assert all(v == 1.0 for v in m.values())


def test_batch_size_does_not_change_the_result():
    rng = np.random.default_rng(4)
    n = 80
    histories, targets = make_users(rng, 50, n)
    table = np.round(rng.random((50, n + 1)), 1)  # coarse: many ties
    calls = []

    def score_fn(idx):
        calls.append(idx.copy())
        return table[idx]

    one = evaluate_ranking(score_fn, histories, targets, n, ks=(5, 20), batch_size=1)
    assert [c.tolist() for c in calls] == [[i] for i in range(50)]
    whole = evaluate_ranking(score_fn, histories, targets, n, ks=(5, 20), batch_size=256)
    assert calls[-1].tolist() == list(range(50))
    greater, ties = target_ranks(table, targets, histories)
    assert one == pytest.approx(whole, rel=1e-14)
    assert {k: v for k, v in whole.items() if k != "users"} == pytest.approx(reference_metrics(greater, ties, (5, 20)))


def test_evaluate_errors():
    n = 10
    histories = [np.array([1]), np.array([2]), np.array([3])]
    targets = np.array([4, 5, 6])

    def nan_for_user_2(idx):
        scores = np.zeros((idx.size, n + 1))
        scores[idx == 2] = np.nan
        return scores

    with pytest.raises(ValueError, match=r"users 2\.\.2.*row 0"):
        evaluate_ranking(nan_for_user_2, histories, targets, n, batch_size=2)
    with pytest.raises(ValueError, match="shape"):
        evaluate_ranking(lambda idx: np.zeros((idx.size, n)), histories, targets, n)
    with pytest.raises(ValueError):
        evaluate_ranking(lambda idx: np.zeros((idx.size, n + 1)), histories[:2], targets, n)
    with pytest.raises(ValueError, match="no users"):
        evaluate_ranking(lambda idx: np.zeros((idx.size, n + 1)), [], np.array([], dtype=int), n)
