"""The cluster step of tag discovery, and what happens to the items no cluster claims.

``kmeans`` (default, :class:`KMeansClusterer`): spherical k-means on faiss, seeded. With ``Discover.k: 0`` the
number of clusters is chosen automatically (:func:`paddle_tag.discover.kmeans.choose_k`): one k-means with
``k_max`` clusters on a fixed-seed sample of at most ``Discover.sample_size`` items, Ward merges of its clusters
down to ``k_min``, each level polished by a few k-means iterations, and the level (k in ``k_min..k_max``, step
``k_step``) with the highest mean silhouette (cosine distance) on the sample wins — ties to the smaller k; its
centroids start the final k-means on all items. Silhouette rewards clusters that are tight and apart without a
model of their shape, and on a capped sample its cost does not grow with the corpus. On THUCNews titles embedded
with e5 it peaks at k=9..10 (the data has 10 classes).

``hdbscan`` (:class:`HDBSCANClusterer`): sklearn's ``HDBSCAN`` (no extra package) on the unit rows, where
euclidean distance orders pairs as cosine does; it finds its own k and labels noise -1.

:func:`resolve_outliers` then decides in the clustering (reduced) space: cluster members whose cosine to their
centroid is below ``Discover.min_similarity`` become outliers; every outlier joins its nearest centroid when
that cosine is at least ``max(outlier_threshold, min_similarity)``, and the rest stay unassigned (label -1).
The tags' centroids and the items' scores are then computed in the embedder's space, the space
``tools/assign.py`` compares new items in.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from paddle_tag.config import Config
from paddle_tag.discover.embed import l2_normalise
from paddle_tag.discover.kmeans import choose_k, cluster_sums, spherical_kmeans
from paddle_tag.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


@dataclass
class Clustering:
    """Cluster labels ``(N,)`` (0..k-1, -1 = outlier) and how they were found (JSON-ready ``info``)."""

    labels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class KMeansClusterer:
    """Spherical k-means on faiss; ``k=0`` chooses k by silhouette (see the module docstring).

    ``fit_predict(Z: (N, d) unit rows)`` → :class:`Clustering` with labels in 0..k-1.
    """

    def __init__(self, k: int = 0, k_min: int = 5, k_max: int = 30, k_step: int = 1, sample_size: int = 5000,
                 niter: int = 25, seed: int = 42, redo: int = 3) -> None:
        if k < 0 or k == 1 or not 2 <= k_min <= k_max or k_step < 1:
            raise ValueError(f"bad k settings: k={k}, k_min={k_min}, k_max={k_max}, k_step={k_step}")
        self.k, self.k_min, self.k_max, self.k_step = k, k_min, k_max, k_step
        self.sample_size, self.niter, self.seed, self.redo = sample_size, niter, seed, redo

    def fit_predict(self, vectors: np.ndarray) -> Clustering:
        n = vectors.shape[0]
        info: dict[str, Any] = {"method": "kmeans"}
        if self.k:
            if self.k > n:
                raise ConfigError(f"Discover.k={self.k} is more than the {n} items to cluster")
            k = self.k
        else:
            # a cluster needs at least two items for a silhouette, so k stays below n
            k_max = min(self.k_max, n - 1, self.sample_size - 1)
            if k_max < self.k_min:
                raise DataError(f"{n} items are too few to choose k in Discover.k_min..k_max = "
                                f"{self.k_min}..{self.k_max}; give more items or lower Discover.k_min")
            if k_max < self.k_max:
                logger.warning("Discover.k_max=%d lowered to %d for %d items", self.k_max, k_max, n)
            candidates = list(range(self.k_min, k_max + 1, self.k_step))
            choice = choose_k(vectors, candidates, self.sample_size, self.niter, self.seed, self.redo)
            info.update(criterion="silhouette (cosine) of the Ward levels of a k_max-means", k=choice.k,
                        sample=min(n, self.sample_size),
                        silhouette={str(c): round(s, 4) for c, s in choice.scores.items()})
            labels, _ = spherical_kmeans(vectors, choice.k, self.niter, self.seed, init=choice.init)
            return Clustering(labels, info)
        info["k"] = k
        return Clustering(spherical_kmeans(vectors, k, self.niter, self.seed, self.redo)[0], info)


class HDBSCANClusterer:
    """sklearn ``HDBSCAN`` on unit rows; finds its own k, labels noise -1."""

    def __init__(self, min_cluster_size: int = 15) -> None:
        self.min_cluster_size = min_cluster_size

    def fit_predict(self, vectors: np.ndarray) -> Clustering:
        from sklearn.cluster import HDBSCAN

        if vectors.shape[0] < self.min_cluster_size:
            raise DataError(f"{vectors.shape[0]} items are fewer than Discover.min_cluster_size="
                            f"{self.min_cluster_size}")
        labels = HDBSCAN(min_cluster_size=self.min_cluster_size, metric="euclidean", copy=True).fit_predict(
            np.asarray(vectors, dtype=np.float64))
        found = int(labels.max()) + 1
        if found == 0:
            raise DataError(f"HDBSCAN found no cluster of at least {self.min_cluster_size} items; "
                            "lower Discover.min_cluster_size or use Discover.cluster=kmeans")
        return Clustering(labels.astype(np.int64), {"method": "hdbscan", "k": found,
                                                    "noise_share": round(float((labels < 0).mean()), 4)})


#: Discover.cluster → its step, built from the config.
CLUSTERERS: dict[str, Callable[[Config], object]] = {
    "kmeans": lambda c: KMeansClusterer(c.Discover.k, c.Discover.k_min, c.Discover.k_max, c.Discover.k_step,
                                        c.Discover.sample_size, c.Discover.kmeans_iters, c.Global.seed,
                                        c.Discover.kmeans_redo),
    "hdbscan": lambda c: HDBSCANClusterer(c.Discover.min_cluster_size),
}


def build_clusterer(config: Config):
    kind = config.Discover.cluster
    if kind not in CLUSTERERS:
        raise ConfigError(f"Discover.cluster={kind!r}; expected one of {', '.join(CLUSTERERS)}")
    return CLUSTERERS[kind](config)


def centroids_of(embeddings: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``(k, D)`` unit-length mean of each cluster's rows (labels -1 ignored; an empty cluster's row is 0)."""
    return l2_normalise(cluster_sums(embeddings, labels, k))


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel the clusters that still have members as 0..k-1, keeping their order; -1 stays -1."""
    present = np.unique(labels[labels >= 0])
    mapping = np.full(int(labels.max()) + 2 if labels.size else 1, -1, dtype=np.int64)
    mapping[present] = np.arange(len(present))
    return np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)


def resolve_outliers(reduced: np.ndarray, embeddings: np.ndarray, labels: np.ndarray, min_similarity: float,
                     threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Final labels, scores, unit centroids and counts, after demoting and re-assigning outliers.

    ``reduced``: ``(N, d)`` unit rows the clusters were found in — the decisions (``min_similarity``,
    ``threshold``) are cosines there, because PCA centres the data and so spreads cosines over [-1, 1] for any
    embedder (e5's raw cosines all sit above ~0.7, where a fixed threshold would mean nothing).
    ``embeddings``: ``(N, D)`` unit rows in the embedder's space — the returned centroids (from the final
    members) and scores (cosine to the own centroid; to the nearest one for outliers) live there, because that
    is where new items are compared. ``labels``: ``(N,)``, -1 = outlier.
    """
    labels = compact_labels(np.asarray(labels, dtype=np.int64))
    k = int(labels.max()) + 1
    if k == 0:
        raise DataError("no cluster to assign items to")
    sims = reduced @ centroids_of(reduced, labels, k).T  # (N, k): 4 GB only at 1M items × 1,000 tags
    own = np.where(labels >= 0, sims[np.arange(len(labels)), np.maximum(labels, 0)], -np.inf)
    first = labels.copy()
    first[own < min_similarity] = -1  # too far from its own centroid: an outlier like HDBSCAN's noise
    nearest, best = sims.argmax(axis=1), sims.max(axis=1)
    floor = max(threshold, min_similarity)
    outliers = first < 0
    rescued = outliers & (best >= floor)
    final = compact_labels(np.where(rescued, nearest, first))
    k_final = int(final.max()) + 1 if (final >= 0).any() else 0
    if k_final == 0:
        raise DataError(f"every item is an outlier (no cosine to a centroid reaches {floor}); "
                        "lower Discover.outlier_threshold / Discover.min_similarity")
    centroids = centroids_of(embeddings, final, k_final)
    sims = embeddings @ centroids.T
    scores = np.where(final >= 0, sims[np.arange(len(final)), np.maximum(final, 0)], sims.max(axis=1))
    info = {"outliers_before": int(outliers.sum()), "rescued": int(rescued.sum()),
            "outliers": int((final < 0).sum()), "outlier_share": round(float((final < 0).mean()), 6)}
    return final, scores.astype(np.float32), centroids, info
