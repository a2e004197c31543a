"""Clustering metrics against known labels: NMI, ARI, purity, and how outliers count."""
from __future__ import annotations

import numpy as np
import pytest

from paddle_tag.metrics.clustering import clustering_metrics, cosine_silhouette, purity


def test_perfect_clustering_scores_one_whatever_the_cluster_ids():
    truth = ["体育", "体育", "财经", "财经", "房产"]
    scores = clustering_metrics(truth, [7, 7, 0, 0, 3])
    assert scores == {"nmi": 1.0, "ari": 1.0, "purity": 1.0}


def test_purity_by_hand():
    truth = ["a", "a", "b", "b", "b", "c"]
    # cluster 0 = a a b (2 right), cluster 1 = b b c (2 right)
    assert purity(truth, [0, 0, 0, 1, 1, 1]) == pytest.approx(4 / 6)
    assert purity(truth, [0, 1, 2, 3, 4, 5]) == 1.0  # singletons are trivially pure (NMI/ARI are not fooled)
    with pytest.raises(ValueError):
        purity(truth, [0, 1])


def test_one_big_cluster_scores_zero_nmi_and_ari():
    truth = ["a", "b"] * 10
    scores = clustering_metrics(truth, [0] * 20)
    assert scores["nmi"] == 0.0 and scores["ari"] == 0.0 and scores["purity"] == 0.5


def test_outliers_count_as_their_own_group_and_assigned_scores_are_added():
    truth = ["a", "a", "a", "b", "b", "b"]
    scores = clustering_metrics(truth, [0, 0, -1, 1, 1, -1])
    assert scores["purity"] == pytest.approx(5 / 6)  # the -1 group (one a, one b) counts one right
    assert scores["nmi"] < 1.0 and scores["ari"] < 1.0
    assert scores["nmi_assigned"] == 1.0 and scores["ari_assigned"] == 1.0 and scores["purity_assigned"] == 1.0


@pytest.mark.parametrize("k", [2, 5, 17])
def test_cosine_silhouette_equals_sklearns(k):
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(k)
    x = rng.normal(size=(300, 8)) + rng.normal(size=(k, 8))[rng.integers(0, k, 300)] * 2
    labels = rng.integers(0, k, 300)
    labels[0] = k  # a singleton cluster scores 0, as in sklearn
    assert cosine_silhouette(x, labels) == pytest.approx(silhouette_score(x, labels, metric="cosine"), abs=1e-9)


def test_cosine_silhouette_needs_two_to_n_minus_one_clusters():
    x = np.eye(3)
    with pytest.raises(ValueError, match="2 to N-1 clusters"):
        cosine_silhouette(x, [0, 0, 0])
    with pytest.raises(ValueError, match="2 to N-1 clusters"):
        cosine_silhouette(x, [0, 1, 2])
