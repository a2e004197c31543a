"""The k-means algorithms behind the cluster step: faiss k-means, cluster sums, Ward levels, the choice of k."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import blobs, same_partition

from paddle_tag.discover.embed import l2_normalise
from paddle_tag.discover.kmeans import choose_k, cluster_sums, spherical_kmeans, ward_levels
from paddle_tag.errors import DataError


def test_choose_k_finds_the_true_k_and_seeds_the_final_fit():
    x, truth = blobs(6, 40)
    choice = choose_k(x, list(range(3, 11)), sample_size=200, niter=20, seed=1)
    assert choice.k == 6 and set(choice.scores) == set(range(3, 11))
    assert max(choice.scores.values()) == choice.scores[6]
    assert choice.init.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(choice.init, axis=1), 1.0, atol=1e-5)
    labels, centroids = spherical_kmeans(x, 6, niter=10, seed=0, init=choice.init)
    assert same_partition(labels, truth) and centroids.shape == (6, 16)
    again = choose_k(x, list(range(3, 11)), sample_size=200, niter=20, seed=1)
    assert again.scores == choice.scores and (again.init == choice.init).all()


def test_choose_k_respects_the_candidates_and_refuses_identical_items():
    x, _ = blobs(6, 40)
    assert set(choose_k(x, [2, 4, 8], sample_size=240, niter=10, seed=0).scores) == {2, 4, 8}
    same = np.tile(l2_normalise(np.ones((1, 8))), (50, 1))
    with pytest.raises(DataError, match="all alike"):
        choose_k(same, [3, 4], sample_size=50, niter=5, seed=0)


def test_ward_levels_merge_the_closest_clusters_first():
    # four equal clusters on a line at 0, 1, 10, 12: first {0, 1}, then {10, 12}, then everything
    sums = np.array([[0.0], [1.0], [10.0], [12.0]]) * 5
    levels = ward_levels(sums, np.full(4, 5.0), k_min=1)
    np.testing.assert_array_equal(levels[4], [0, 1, 2, 3])
    np.testing.assert_array_equal(levels[3], [0, 0, 1, 2])
    np.testing.assert_array_equal(levels[2], [0, 0, 1, 1])
    np.testing.assert_array_equal(levels[1], [0, 0, 0, 0])
    # sizes count: two big clusters 1 apart stay apart while a single item 1.2 away joins one of them
    weighted = ward_levels(np.array([[0.0], [100 * 1.0], [-1.2]]), np.array([100.0, 100.0, 1.0]), k_min=2)
    np.testing.assert_array_equal(weighted[2], [0, 1, 0])


def test_ward_levels_are_nested():
    x, _ = blobs(5, 20, spread=0.4, seed=3)
    labels, _ = spherical_kmeans(x, 12, niter=10, seed=0)
    levels = ward_levels(cluster_sums(x, labels, 12), np.bincount(labels, minlength=12), k_min=2)
    for k in range(2, 12):  # every cluster at level k+1 lies inside one cluster at level k
        pairs = set(zip(levels[k + 1].tolist(), levels[k].tolist()))
        assert len(pairs) == k + 1 and len(set(levels[k].tolist())) == k


def test_cluster_sums_ignore_outliers_and_keep_empty_clusters():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    sums = cluster_sums(x, np.array([0, 2, 0, -1, 2, 2]), 4)
    np.testing.assert_allclose(sums, [[4, 6], [0, 0], [2 + 8 + 10, 3 + 9 + 11], [0, 0]])


def test_spherical_kmeans_is_repeatable_with_a_seed():
    x, truth = blobs(3, 30)
    first, centroids = spherical_kmeans(x, 3, niter=20, seed=7, redo=2)
    second, _ = spherical_kmeans(x, 3, niter=20, seed=7, redo=2)
    np.testing.assert_array_equal(first, second)
    assert same_partition(first, truth)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
