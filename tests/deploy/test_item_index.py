"""deploy.item_index: exact and approximate inner-product search, exclusions, skip rows, bad input.

Real faiss indexes on small synthetic catalogues; the reference is numpy brute force.
"""
from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from deploy import DeployError
from deploy.item_index import ItemIndex, ItemIndexError


def clustered(count: int, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """L2-normalised points around random centres: what learned item vectors look like, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    points = centres[rng.integers(0, clusters, count)] + 0.35 * rng.standard_normal((count, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def reference(vectors: np.ndarray, queries: np.ndarray, k: int, banned=()) -> tuple[np.ndarray, np.ndarray]:
    """numpy brute force: top-k rows by inner product, highest first, none of `banned`."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    scores[:, list(banned)] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(scores, top, axis=1)


def test_exact_search_equals_numpy_argsort():
    vectors, queries = clustered(600, seed=1), clustered(25, seed=2)
    index = ItemIndex(vectors)
    assert index.kind == "exact" and index.num_searchable == 600
    rows, scores = index.search(queries, 10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32 and rows.shape == scores.shape == (25, 10)
    want_rows, want_scores = reference(vectors, queries, 10)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    # continuous random vectors have no ties, so the rows themselves must agree
    np.testing.assert_array_equal(rows, want_rows)


def test_exact_search_with_tied_items_returns_the_right_scores():
    base = clustered(50, seed=3)
    vectors = np.concatenate([base, base])  # every item twice: rows i and i + 50 tie
    queries = clustered(5, seed=4)
    rows, scores = ItemIndex(vectors).search(queries, 6)
    want_rows, want_scores = reference(vectors, queries, 6)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    np.testing.assert_array_equal(np.sort(rows % 50, axis=1), np.sort(want_rows % 50, axis=1))


@pytest.mark.parametrize("kind, options, min_recall", [
    ("hnsw", {"hnsw_m": 16, "ef_construction": 80, "ef_search": 200}, 0.95),
    ("ivf", {"nlist": 64, "nprobe": 8}, 0.9),
])
def test_approximate_index_reaches_high_recall_on_clustered_items(kind, options, min_recall):
    vectors, queries = clustered(6000, seed=5), clustered(100, seed=6)
    index = ItemIndex(vectors, approximate_above=1000, approximate=kind, **options)
    assert index.settings == {"kind": kind, **options}
    rows, scores = index.search(queries, 10)
    want_rows, _ = reference(vectors, queries, 10)
    recall = np.mean([len(set(got) & set(want)) / 10 for got, want in zip(rows, want_rows)])
    assert recall >= min_recall, f"{kind} recall@10 {recall:.3f}"
    assert (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_allclose(scores, np.einsum("bkh,bh->bk", vectors[rows], queries), atol=1e-5)


def test_tune_trades_recall_for_effort_without_a_rebuild():
    vectors, queries = clustered(6000, seed=5), clustered(100, seed=6)
    want_rows, _ = reference(vectors, queries, 10)
    index = ItemIndex(vectors, approximate_above=1000, approximate="ivf", nlist=64, nprobe=1)
    recalls = []
    for nprobe in (1, 64):  # 64 of 64 cells: every item is visited, the search is exact
        index.tune(nprobe=nprobe)
        rows, _ = index.search(queries, 10)
        recalls.append(np.mean([len(set(got) & set(want)) / 10 for got, want in zip(rows, want_rows)]))
    assert recalls[0] < 0.9 and recalls[1] == 1.0
    assert index.settings == {"kind": "ivf", "nlist": 64, "nprobe": 64}
    with pytest.raises(ItemIndexError, match="ef_search tunes an 'hnsw' index, this one is 'ivf'"):
        index.tune(ef_search=10)
    with pytest.raises(ItemIndexError, match="nprobe must be a positive integer"):
        index.tune(nprobe=0)


def test_the_small_catalogue_stays_exact_up_to_the_threshold():
    vectors = clustered(300, seed=7)
    assert ItemIndex(vectors, approximate_above=300).settings == {"kind": "exact"}
    assert ItemIndex(vectors, approximate_above=299).kind == "ivf"
    # skip rows do not count: 299 searchable items stay exact under 299
    assert ItemIndex(vectors, approximate_above=299, skip_rows=[0]).kind == "exact"


KINDS = [{"approximate_above": 10_000}, {"approximate_above": 100, "approximate": "hnsw"},
         {"approximate_above": 100, "approximate": "ivf", "nlist": 16, "nprobe": 4}]


@pytest.mark.parametrize("options", KINDS, ids=["exact", "hnsw", "ivf"])
def test_skip_rows_and_exclusions_are_never_returned_even_when_best(options):
    vectors, queries = clustered(1200, seed=8), clustered(8, seed=9)
    vectors[0] = queries[0] * 10  # the padding row would be everyone's best match
    index = ItemIndex(vectors, skip_rows=[0], **options)
    assert index.num_searchable == 1199
    best_rows, _ = reference(vectors, queries, 5, banned=[0])
    exclude = [best_rows[b] for b in range(len(queries))]  # each query's five best items, seen already
    exclude[1] = np.concatenate([exclude[1], [0, 0]])  # a skip row (and a duplicate) among them is harmless
    rows, scores = index.search(queries, 20, exclude=exclude)
    for b in range(len(queries)):
        assert 0 not in rows[b]
        assert not set(rows[b]) & set(best_rows[b].tolist())
        want_rows, want_scores = reference(vectors, queries[b:b + 1], 20, banned=[0, *best_rows[b]])
        np.testing.assert_allclose(scores[b], vectors[rows[b]] @ queries[b], atol=1e-5)
        if index.kind == "exact":
            np.testing.assert_array_equal(rows[b], want_rows[0])
            np.testing.assert_allclose(scores[b], want_scores[0], atol=1e-5)


@pytest.mark.parametrize("options", KINDS, ids=["exact", "hnsw", "ivf"])
def test_exclusions_leaving_fewer_than_k_items_pad_with_minus_one(options):
    vectors, queries = clustered(400, seed=10), clustered(2, seed=11)
    index = ItemIndex(vectors, skip_rows=[0], **options)
    keep = np.array([3, 50, 77, 390])
    seen = np.setdiff1d(np.arange(400), keep)
    rows, scores = index.search(queries, 10, exclude=[seen, None])
    assert sorted(rows[0, :4]) == keep.tolist()
    assert (rows[0, 4:] == -1).all() and np.isneginf(scores[0, 4:]).all()
    assert (np.diff(scores[0, :4]) <= 0).all()
    assert (rows[1] >= 1).all() and len(set(rows[1])) == 10  # the other query is untouched


def test_an_approximate_search_that_runs_dry_falls_back_to_brute_force():
    # IVF visiting 1 cell of 16 sees ~1/16 of the items: with all but 15 items seen, its cell holds too few
    vectors, queries = clustered(2000, seed=12), clustered(3, seed=13)
    index = ItemIndex(vectors, approximate_above=100, approximate="ivf", nlist=16, nprobe=1)
    rng = np.random.default_rng(0)
    seen = [np.setdiff1d(np.arange(2000), rng.choice(2000, 15, replace=False)) for _ in range(3)]
    rows, scores = index.search(queries, 10, exclude=seen)
    for b in range(3):
        want_rows, want_scores = reference(vectors, queries[b:b + 1], 10, banned=seen[b])
        np.testing.assert_array_equal(rows[b], want_rows[0])
        np.testing.assert_allclose(scores[b], want_scores[0], atol=1e-5)


def test_float64_input_is_converted_to_float32():
    vectors, queries = clustered(200, seed=14), clustered(4, seed=15)
    rows32, scores32 = ItemIndex(vectors).search(queries, 5)
    rows64, scores64 = ItemIndex(vectors.astype(np.float64)).search(queries.astype(np.float64), 5)
    np.testing.assert_array_equal(rows32, rows64)
    assert scores64.dtype == np.float32
    np.testing.assert_allclose(scores32, scores64, atol=1e-6)


def test_threads_apply_in_whichever_thread_searches():
    # OpenMP thread counts are per calling thread: a server's worker thread must get the index's count too
    counts = {}
    before = faiss.omp_get_max_threads()
    try:
        index = ItemIndex(clustered(50), threads=3)
        assert index.threads == 3

        def worker() -> None:
            index.search(clustered(4, seed=1), 5)
            counts["batch"] = faiss.omp_get_max_threads()
            index.search(clustered(1, seed=1), 5)
            counts["single"] = faiss.omp_get_max_threads()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    finally:
        faiss.omp_set_num_threads(before)
    assert counts == {"batch": 3, "single": 1}


@pytest.mark.parametrize("call, message", [
    (lambda index, q: index.search(q, 0), r"k must be an integer in \[1, 99\]"),
    (lambda index, q: index.search(q, 100), r"k must be an integer in \[1, 99\]"),
    (lambda index, q: index.search(q, True), "k must be an integer"),
    (lambda index, q: index.search(q[:, :16], 5), "queries have dim 16, the item vectors 32"),
    (lambda index, q: index.search(q[0], 5), r"queries must be a 2-D array"),
    (lambda index, q: index.search(np.where(np.arange(32) == 3, np.nan, q), 5), "non-finite"),
    (lambda index, q: index.search(q.astype(np.int32), 5), "must hold floats"),
    (lambda index, q: index.search(q, 5, exclude=[[1]]), "exclude has 1 entries for 2 queries"),
    (lambda index, q: index.search(q, 5, exclude=[[1], [100]]), r"exclude\[1\] has row 100 outside"),
    (lambda index, q: index.search(q, 5, exclude=[[1.5], None]), "integer row ids"),
], ids=["k0", "k-too-big", "k-bool", "dim", "1-d", "nan", "int", "exclude-len", "exclude-range", "exclude-float"])
def test_bad_searches_are_refused_clearly(call, message):
    index = ItemIndex(clustered(100), skip_rows=[0])
    with pytest.raises(ItemIndexError, match=message):
        call(index, clustered(2, seed=16))


@pytest.mark.parametrize("vectors, options, message", [
    (np.full((3, 4), np.nan, np.float32), {}, r"item vectors has non-finite values .* first row 0"),
    (np.ones((3, 4), np.int64), {}, "must hold floats"),
    (np.ones(4, np.float32), {}, "2-D array"),
    (np.ones((3, 4), np.float32), {"skip_rows": [0, 1, 2]}, "no searchable items"),
    (np.ones((3, 4), np.float32), {"skip_rows": [3]}, "skip_rows has row 3 outside"),
    (np.ones((3, 4), np.float32), {"approximate": "lsh"}, "approximate must be one of"),
    (np.ones((3, 4), np.float32), {"threads": 0}, "threads must be a positive integer"),
    (np.ones((3, 4), np.float32), {"ef_search": 0}, "ef_search must be a positive integer"),
    (np.ones((3, 4), np.float32), {"nlist": 0}, "nlist must be a positive integer"),
])
def test_bad_catalogues_are_refused_clearly(vectors, options, message):
    with pytest.raises(ItemIndexError, match=message):
        ItemIndex(vectors, **options)


def test_item_index_errors_are_deploy_errors_and_value_errors():
    assert issubclass(ItemIndexError, DeployError) and issubclass(ItemIndexError, ValueError)
