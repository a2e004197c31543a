"""The cluster step: faiss k-means (k chosen automatically or given), HDBSCAN, and outlier re-assignment."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import blobs, same_partition

from paddle_tag.config import load_config
from paddle_tag.discover.cluster import (HDBSCANClusterer, KMeansClusterer, build_clusterer, centroids_of,
                                         compact_labels, resolve_outliers)
from paddle_tag.discover.embed import l2_normalise
from paddle_tag.errors import ConfigError, DataError


def test_kmeans_chooses_the_true_k_and_recovers_the_groups():
    x, truth = blobs(6, 40)
    result = KMeansClusterer(k=0, k_min=3, k_max=10, sample_size=200, seed=1, redo=3).fit_predict(x)
    assert result.info["k"] == 6 and result.info["criterion"].startswith("silhouette")
    assert set(result.info["silhouette"]) == {str(k) for k in range(3, 11)}
    assert same_partition(result.labels, truth)
    again = KMeansClusterer(k=0, k_min=3, k_max=10, sample_size=200, seed=1, redo=3).fit_predict(x)
    np.testing.assert_array_equal(result.labels, again.labels)


def test_a_given_k_is_used_as_is():
    x, truth = blobs(4, 30)
    result = KMeansClusterer(k=4, seed=3).fit_predict(x)
    assert result.info == {"method": "kmeans", "k": 4} and same_partition(result.labels, truth)


def test_kmeans_size_errors():
    x, _ = blobs(2, 4)
    with pytest.raises(ConfigError, match="Discover.k=20 is more than the 8 items"):
        KMeansClusterer(k=20).fit_predict(x)
    with pytest.raises(DataError, match="too few to choose k"):
        KMeansClusterer(k=0, k_min=10, k_max=30).fit_predict(x)
    # k_max above the item count is lowered, not an error
    assert KMeansClusterer(k=0, k_min=2, k_max=30).fit_predict(x).info["k"] <= 7


def test_hdbscan_finds_groups_and_marks_noise():
    x, truth = blobs(3, 30, spread=0.05)
    noise = l2_normalise(np.random.default_rng(9).normal(size=(5, 16)))
    result = HDBSCANClusterer(min_cluster_size=10).fit_predict(np.vstack([x, noise]))
    assert result.info["k"] == 3
    assert same_partition(result.labels[:90], truth)
    assert (result.labels[90:] == -1).sum() >= 3
    with pytest.raises(DataError, match="min_cluster_size"):
        HDBSCANClusterer(min_cluster_size=200).fit_predict(x)


def test_build_clusterer_from_config():
    step = build_clusterer(load_config(None, ["Discover.cluster=hdbscan", "Discover.min_cluster_size=7"]))
    assert isinstance(step, HDBSCANClusterer) and step.min_cluster_size == 7
    assert isinstance(build_clusterer(load_config()), KMeansClusterer)


def test_outliers_join_the_nearest_centroid_only_above_the_threshold():
    x, truth = blobs(2, 10, spread=0.1)
    far = l2_normalise(np.random.default_rng(4).normal(size=(1, 16)))
    near = l2_normalise(x[:1] + 0.05)  # close to group 0
    data = np.vstack([x, near, far])
    labels = np.concatenate([truth, [-1, -1]])
    threshold = float((far @ centroids_of(data, labels, 2).T).max()) + 0.05
    # decisions are taken in the clustering space (data); centroids and scores come in the embedder's space,
    # here another (24-dimensional) view of the same items
    embedded = l2_normalise(data @ np.random.default_rng(5).normal(size=(16, 24)))
    final, scores, centroids, info = resolve_outliers(data, embedded, labels, min_similarity=-1.0,
                                                      threshold=threshold)
    assert final[20] == 0 and final[21] == -1
    assert info == {"outliers_before": 2, "rescued": 1, "outliers": 1, "outlier_share": round(1 / 22, 6)}
    assert centroids.shape == (2, 24)
    np.testing.assert_allclose(centroids, centroids_of(embedded, final, 2), atol=1e-6)
    np.testing.assert_allclose(scores[:21], np.sum(embedded[:21] * centroids[final[:21]], axis=1), atol=1e-5)
    assert scores[21] == pytest.approx(float((embedded[21] @ centroids.T).max()), abs=1e-5)  # nearest tag's


def test_min_similarity_demotes_far_members():
    x, truth = blobs(2, 10, spread=0.1)
    stray = l2_normalise(np.random.default_rng(4).normal(size=(1, 16)))
    data, labels = np.vstack([x, stray]), np.concatenate([truth, [1]])
    final, _, _, info = resolve_outliers(data, data, labels, min_similarity=0.7, threshold=0.0)
    assert final[20] == -1 and (final[:20] == truth).all() and info["outliers"] == 1


def test_compact_labels_keeps_order_and_outliers():
    np.testing.assert_array_equal(compact_labels(np.array([5, -1, 2, 5, 9])), [1, -1, 0, 1, 2])
