"""The cluster step of tag discovery, and what happens to the items no cluster claims.

``kmeans`` (default, :class:`KMeansClusterer`): spherical k-means on faiss, seeded. With ``Discover.k: 0`` the
number of clusters is chosen automatically: every candidate k in ``k_min..k_max`` (step ``k_step``) is fitted
on the same fixed-seed sample of at most ``Discover.sample_size`` items, and the k with the highest mean
silhouette (cosine distance, sklearn ``silhouette_score``) wins — ties to the smaller k. Silhouette rewards
clusters that are tight and apart without a model of their shape, and on a 5,000-item sample its cost does not
grow with the corpus (measured: 26 candidates in 28 s on 2 busy CPU cores). On THUCNews titles embedded
with e5 it peaks at k=10, the number of classes.

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
from paddle_tag.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SINGLE_THREAD_BELOW = 500_000_000  # items × dims × k under which faiss runs on one thread (≈ 1M × 32 × 16)


@dataclass
class Clustering:
    """Cluster labels ``(N,)`` (0..k-1, -1 = outlier) and how they were found (JSON-ready ``info``)."""

    labels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _kmeans(vectors: np.ndarray, k: int, niter: int, seed: int, redo: int = 1) -> np.ndarray:
    """Spherical k-means labels; faiss with a fixed seed is repeatable run to run. faiss starts from random
    points (no k-means++), so ``redo`` restarts keep the best objective — one start can split a group in two
    and join two others."""
    import faiss

    data = np.ascontiguousarray(vectors, dtype=np.float32)
    # min_points_per_centroid=1: small samples are fine here, and faiss would print a warning for each
    km = faiss.Kmeans(data.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False, nredo=redo,
                      min_points_per_centroid=1)
    threads = faiss.omp_get_max_threads()
    if data.shape[0] * data.shape[1] * k < SINGLE_THREAD_BELOW:
        # small jobs: OpenMP threads cost more than they save, and on a busy machine their spin-waits made a
        # 300-item k-means take 78 s instead of 2 s (measured on 2 shared cores)
        faiss.omp_set_num_threads(1)
    try:
        km.train(data)
        _, nearest = km.index.search(data, 1)
    finally:
        faiss.omp_set_num_threads(threads)
    return nearest[:, 0].astype(np.int64)


def choose_k(vectors: np.ndarray, candidates: list[int], sample_size: int, niter: int, seed: int,
             redo: int = 1) -> tuple[int, dict[int, float]]:
    """The candidate k with the best cosine silhouette on a fixed-seed sample; returns it and every score."""
    from sklearn.metrics import silhouette_score

    n = vectors.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False)) if n > sample_size \
        else np.arange(n)
    sample = vectors[rows]
    scores: dict[int, float] = {}
    for k in candidates:
        labels = _kmeans(sample, k, niter, seed, redo)
        if len(np.unique(labels)) < 2:
            continue
        scores[k] = float(silhouette_score(sample, labels, metric="cosine"))
    if not scores:
        raise DataError(f"could not choose k: every candidate in {candidates} put the {len(rows)} sampled items "
                        "into one cluster (are the texts all alike?)")
    best = max(scores, key=lambda k: (round(scores[k], 6), -k))  # rounding: ties go to the smaller k
    return best, scores


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
            k, scores = choose_k(vectors, candidates, self.sample_size, self.niter, self.seed, self.redo)
            info.update(criterion="silhouette (cosine)", sample=min(n, self.sample_size),
                        silhouette={str(c): round(s, 4) for c, s in scores.items()})
        info["k"] = k
        return Clustering(_kmeans(vectors, k, self.niter, self.seed, self.redo), info)


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
    sums = np.zeros((k, embeddings.shape[1]), dtype=np.float64)
    keep = labels >= 0
    np.add.at(sums, labels[keep], embeddings[keep].astype(np.float64))
    return l2_normalise(sums)


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
