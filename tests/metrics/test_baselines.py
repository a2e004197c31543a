"""Tests for paddle_tag.metrics.baselines: MostPopular, ItemKNN and MarkovChain on hand-written sequences."""

import numpy as np
import pytest

from paddle_tag.metrics.baselines import BASELINES, ItemKNN, MarkovChain, MostPopular
from paddle_tag.metrics.ranking import evaluate_ranking

EMPTY = np.array([], dtype=np.int64)


def seqs(*lists):
    return [np.array(x, dtype=np.int64) for x in lists]


def order(row):
    """Items 1..N from best to worst (stable: equal scores by item id)."""
    return (np.argsort(-row[1:], kind="stable") + 1).tolist()


# ---------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_common_contract(name):
    model = BASELINES[name]()
    with pytest.raises(RuntimeError, match="before fit"):
        model.score(seqs([1]))
    assert model.fit(seqs([1, 2, 3], [2, 3], [], [3, 1]), num_items=4) is model
    scores = model.score(seqs([1], [], [3, 2]))
    assert scores.shape == (3, 5)
    assert np.all(scores[:, 0] == -np.inf)  # padding never recommended
    assert np.all(np.isfinite(scores[:, 1:]))
    with pytest.raises(ValueError):
        model.score(seqs([5]))  # item beyond N
    with pytest.raises(ValueError):
        model.score(seqs([0]))  # padding is no history item
    with pytest.raises(ValueError):
        BASELINES[name]().fit(seqs([1, 9]), num_items=4)


def test_baselines_table():
    assert BASELINES == {"most_popular": MostPopular, "item_knn": ItemKNN, "markov": MarkovChain}


# ---------------------------------------------------------------- MostPopular


def test_most_popular_ranks_by_count():
    model = MostPopular().fit(seqs([1, 2, 3], [2, 3], [3], [4, 3]), num_items=5)
    scores = model.score(seqs([1], [5, 4]))
    assert scores[:, 1:].tolist() == [[1, 2, 4, 1, 0]] * 2  # same list for everyone
    assert order(scores[0]) == [3, 2, 1, 4, 5]


# ---------------------------------------------------------------- ItemKNN


def test_item_knn_cosine_by_hand():
    # users: {1, 2}, {1, 2, 3}, {3, 4}  ->  cos(1,2) = 2/2, cos(1,3) = 1/2, cos(2,3) = 1/2, cos(3,4) = 1/sqrt(2)
    model = ItemKNN().fit(seqs([1, 2], [1, 2, 3], [3, 4]), num_items=5)
    s = 1 / np.sqrt(2)
    want = np.array(
        [[0, 0, 0, 0, 0, 0], [0, 0, 1, 0.5, 0, 0], [0, 1, 0, 0.5, 0, 0], [0, 0.5, 0.5, 0, s, 0], [0, 0, 0, s, 0, 0],
         [0, 0, 0, 0, 0, 0]]
    )
    np.testing.assert_allclose(model.similarity, want, rtol=1e-6)  # self-similarity 0; item 5 unseen: 0
    scores = model.score(seqs([1], [1, 3], []))
    np.testing.assert_allclose(scores[0, 1:], [0, 1, 0.5, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(scores[1, 1:], [0.5, 1.5, 0.5, s, 0], rtol=1e-6)
    assert np.all(scores[2, 1:] == 0)  # nothing to be similar to: a pure tie for the evaluator


def test_item_knn_recent_window():
    model = ItemKNN(recent=1).fit(seqs([1, 2], [1, 2, 3], [3, 4]), num_items=5)
    scores = model.score(seqs([1, 3], [3, 1]))
    np.testing.assert_allclose(scores[0, 1:], [0.5, 0.5, 0, 1 / np.sqrt(2), 0], rtol=1e-6)  # only item 3 counts
    np.testing.assert_allclose(scores[1, 1:], [0, 1, 0.5, 0, 0], rtol=1e-6)  # only item 1 counts
    whole = ItemKNN(recent=None).fit(seqs([1, 2], [1, 2, 3], [3, 4]), num_items=5)
    np.testing.assert_allclose(whole.score(seqs([1, 3]))[0, 1:], [0.5, 1.5, 0.5, 1 / np.sqrt(2), 0], rtol=1e-6)
    with pytest.raises(ValueError):
        ItemKNN(recent=0)


def test_item_knn_binary_cooccurrence_and_reference():
    rng = np.random.default_rng(0)
    n = 30
    train = [rng.integers(1, n + 1, size=int(rng.integers(1, 15))) for _ in range(40)]  # with repeats
    model = ItemKNN(recent=5).fit(train, num_items=n)
    x = np.zeros((len(train), n + 1))
    for u, s in enumerate(train):
        x[u, s] = 1.0  # binary, however often the user repeated the item
    co = x.T @ x
    norm = np.sqrt(np.maximum(np.diag(co), 1e-300))
    sim = co / np.outer(norm, norm)
    np.fill_diagonal(sim, 0.0)
    np.testing.assert_allclose(model.similarity, sim, rtol=1e-5, atol=1e-7)
    histories = train[:10]
    want = np.stack([sim[h[-5:]].sum(axis=0) for h in histories])
    np.testing.assert_allclose(model.score(histories)[:, 1:], want[:, 1:], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- MarkovChain


def test_markov_predicts_the_observed_transition():
    model = MarkovChain().fit(seqs([1, 2, 3], [1, 2, 4], [1, 3]), num_items=5)
    scores = model.score(seqs([5, 1], [2]))
    # from 1: 1->2 twice, 1->3 once; popularity 1:3, 2:2, 3:2, 4:1, 5:0, max 3 -> back-off pop / 4
    np.testing.assert_allclose(scores[0, 1:], [(0 + 3 / 4) / 3, (2 + 2 / 4) / 3, (1 + 2 / 4) / 3, 1 / 4 / 3, 0])
    assert order(scores[0])[:2] == [2, 3]
    assert order(scores[1])[:2] == [3, 4]  # 2->3 and 2->4 once each: the more popular 3 first


def test_markov_backoff_only_breaks_ties():
    # item 2 follows 1 once but is rare; item 3 never follows 1 but is very popular
    train = seqs([1, 2], *[[3]] * 50, [4, 3], [1, 5], [1, 5])
    scores = MarkovChain().fit(train, num_items=5).score(seqs([1]))[0]
    assert order(scores) == [5, 2, 3, 1, 4]  # counts 2 and 1, then the zero-count items by popularity 51, 3, 1
    assert scores[3] < scores[2]  # popularity 51 does not lift item 3 over one observed transition


def test_markov_unknown_last_item_is_most_popular():
    train = seqs([1, 2, 3], [2, 3], [3, 4])
    markov = MarkovChain().fit(train, num_items=5)
    popular = MostPopular().fit(train, num_items=5).score(seqs([4]))[0]
    for history in (seqs([4]), seqs([1, 5]), [EMPTY]):  # 4 and 5 are never followed by anything; empty history
        assert order(markov.score(history)[0]) == order(popular)


def test_markov_pairs_stay_within_sequences():
    model = MarkovChain().fit(seqs([1, 2], [], [3, 4], [5]), num_items=5)
    dense = model.transitions.toarray()
    assert dense.sum() == 2 and dense[1, 2] == 1 and dense[3, 4] == 1  # no 2->3 or 4->5 across users


# ---------------------------------------------------------------- with the evaluator


def test_baselines_through_the_evaluator():
    n = 6
    train = seqs([1, 2, 3, 4], [1, 2, 3, 5], [2, 3, 4], [6, 1, 2])
    histories = seqs([1, 2], [6, 1], [2])
    targets = np.array([3, 2, 3])  # every target is the observed successor of the last item
    results = {}
    for name, cls in BASELINES.items():
        model = cls().fit(train, num_items=n)
        results[name] = evaluate_ranking(lambda idx: model.score([histories[i] for i in idx]), histories, targets, n,
                                         ks=(1, 3))
    assert results["markov"]["hit@1"] == 1.0
    assert results["most_popular"]["hit@1"] < 1.0
    assert all(r["users"] == 3 for r in results.values())
