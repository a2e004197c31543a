"""Spherical k-means on faiss, and the automatic choice of k behind the cluster step (``Discover.k: 0``).

:func:`choose_k` fits one over-clustering and reads every candidate k off its merge path:

1. k-means with ``k_max`` clusters on a fixed-seed sample of at most ``sample_size`` items;
2. Ward merges of those clusters (first the pair whose merge adds least to the within-cluster sum of squares)
   give a nested partition for every k from ``k_max`` down to ``k_min``;
3. each level is polished by a few k-means iterations on the sample (``REFINE_STEPS``) and scored by its mean
   silhouette with cosine distance — exactly sklearn's ``silhouette_score(metric="cosine")``, but computed from
   each item's similarity to the cluster sums (:func:`paddle_tag.metrics.clustering.silhouette_from_sums`), so
   a level costs O(n·k·d), not n² distances;
4. the best k wins (ties to the smaller) and its centroids start the final k-means on all items.

Why not one k-means per candidate k from random starts (the first design): on 8,000 THUCNews titles that took
9 of 10.6 s, and each fit's random start moved its silhouette by as much as the curve's whole range (0.175..0.196
for k 6..14), so the chosen k went anywhere from 7 to 14 with the seed. Why polish the levels: raw Ward levels
of one over-clustering gave a smooth curve for most seeds, but a poor over-clustering left it flat and k=24 won
(1 seed in 8); polished levels chose k 9 or 10 for all 8 seeds measured (the data has 10 classes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paddle_tag.discover.embed import l2_normalise
from paddle_tag.errors import DataError
from paddle_tag.metrics.clustering import silhouette_from_sums

REFINE_STEPS = 5  # k-means iterations from each Ward level before its silhouette is taken
SINGLE_THREAD_BELOW = 500_000_000  # items × dims × k under which faiss runs on one thread (≈ 1M × 32 × 16)


def spherical_kmeans(vectors: np.ndarray, k: int, niter: int, seed: int, redo: int = 1,
                     init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(N,)`` and unit centroids ``(k, d)`` of spherical k-means; faiss with a fixed seed is repeatable.

    faiss starts from random points (no k-means++), so ``redo`` restarts keep the best objective — one start can
    split a group in two and join two others. ``init``: ``(k, d)`` starting centroids instead (then one run).
    """
    import faiss

    data = np.ascontiguousarray(vectors, dtype=np.float32)
    # min_points_per_centroid=1: small samples are fine here, and faiss would print a warning for each
    km = faiss.Kmeans(data.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                      nredo=1 if init is not None else redo, min_points_per_centroid=1)
    threads = faiss.omp_get_max_threads()
    if data.shape[0] * data.shape[1] * k < SINGLE_THREAD_BELOW:
        # small jobs: OpenMP threads cost more than they save, and on a busy machine their spin-waits made a
        # 300-item k-means take 78 s instead of 2 s (measured on 2 shared cores)
        faiss.omp_set_num_threads(1)
    try:
        km.train(data, init_centroids=None if init is None else np.ascontiguousarray(init, dtype=np.float32))
        _, nearest = km.index.search(data, 1)
    finally:
        faiss.omp_set_num_threads(threads)
    return nearest[:, 0].astype(np.int64), km.centroids.copy()


def cluster_sums(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``(k, D)`` float64 sum of each cluster's rows (labels -1 ignored; an empty cluster's row is 0)."""
    from scipy.sparse import csr_matrix

    labels = np.asarray(labels, dtype=np.int64)
    keep = np.flatnonzero(labels >= 0)
    # a sparse one-hot product: np.add.at took 0.1 s for 8,000 rows, this takes ~1 ms
    onehot = csr_matrix((np.ones(len(keep)), (labels[keep], keep)), shape=(k, len(labels)))
    return np.asarray(onehot @ np.asarray(vectors, dtype=np.float64))


def ward_levels(sums: np.ndarray, counts: np.ndarray, k_min: int) -> dict[int, np.ndarray]:
    """Nested partitions of ``K`` clusters by Ward merges: ``{k: (K,) cluster → 0..k-1}`` for k = K..k_min.

    ``sums`` ``(K, D)`` and ``counts`` ``(K,)`` (all > 0) describe the clusters. Merging a and b adds
    ``na·nb / (na + nb) · |mean_a − mean_b|²`` to the within-cluster sum of squares; the cheapest pair goes first
    (ties: the lowest indices), so the path is deterministic.
    """
    sums, counts = np.array(sums, dtype=np.float64), np.array(counts, dtype=np.float64)
    n_clusters = len(counts)
    group = np.arange(n_clusters)  # each original cluster's current group, named by its lowest member

    def costs_to(a: int, others: np.ndarray) -> np.ndarray:
        gap = sums[others] / counts[others, None] - sums[a] / counts[a]
        return counts[a] * counts[others] / (counts[a] + counts[others]) * (gap * gap).sum(axis=1)

    cost = np.full((n_clusters, n_clusters), np.inf)
    for a in range(n_clusters - 1):
        cost[a, a + 1:] = costs_to(a, np.arange(a + 1, n_clusters))
    levels = {n_clusters: np.arange(n_clusters)}
    for k in range(n_clusters - 1, max(k_min, 1) - 1, -1):
        a, b = np.unravel_index(np.argmin(cost), cost.shape)  # a < b: only the upper triangle is finite
        sums[a] += sums[b]
        counts[a] += counts[b]
        group[group == b] = a
        cost[b, :] = cost[:, b] = np.inf
        alive = np.unique(group)
        others = alive[alive != a]
        fresh = costs_to(a, others)
        cost[a, others[others > a]] = fresh[others > a]
        cost[others[others < a], a] = fresh[others < a]
        levels[k] = np.unique(group, return_inverse=True)[1]
    return levels


def lloyd_steps(vectors: np.ndarray, centroids: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` spherical k-means iterations from ``centroids`` (numpy: at a few thousand rows faiss's setup costs
    more than the arithmetic); returns the labels and the ``(k, d)`` cluster sums they end with."""
    k = len(centroids)
    for _ in range(steps):
        centroids = l2_normalise(cluster_sums(vectors, (vectors @ centroids.T).argmax(axis=1), k))
    labels = (vectors @ centroids.T).argmax(axis=1)
    return labels, cluster_sums(vectors, labels, k)


@dataclass
class KChoice:
    """The chosen ``k``, the silhouette of every candidate scored, and the ``(k, d)`` centroids to start from."""

    k: int
    scores: dict[int, float]
    init: np.ndarray


def choose_k(vectors: np.ndarray, candidates: list[int], sample_size: int, niter: int, seed: int,
             redo: int = 1) -> KChoice:
    """The candidate k with the best cosine silhouette among k-means solutions started from the Ward levels of
    one over-clustering (see the module docstring); ``vectors`` are unit rows."""
    n = vectors.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False)) if n > sample_size \
        else np.arange(n)
    sample = np.asarray(vectors[rows], dtype=np.float64)
    over, _ = spherical_kmeans(sample, min(max(candidates), len(rows)), niter, seed, redo)
    _, over = np.unique(over, return_inverse=True)  # faiss may leave a cluster empty on duplicates
    found = int(over.max()) + 1
    sums = cluster_sums(sample, over, found)
    levels = ward_levels(sums, np.bincount(over), min(candidates))
    self_sims = np.einsum("ij,ij->i", sample, sample)
    scores: dict[int, float] = {}
    starts: dict[int, np.ndarray] = {}
    for k in candidates:
        if k not in levels or k < 2:
            continue
        merged = np.zeros((k, sums.shape[1]))
        np.add.at(merged, levels[k], sums)
        labels, level_sums = lloyd_steps(sample, l2_normalise(merged), REFINE_STEPS)
        counts = np.bincount(labels, minlength=k)
        scores[k] = silhouette_from_sums(sample @ level_sums.T, labels, counts, self_sims)
        starts[k] = l2_normalise(level_sums)
    if not scores:
        raise DataError(f"could not choose k: the {len(rows)} sampled items form only {found} distinct "
                        f"clusters, fewer than every candidate in {candidates} (are the texts all alike?)")
    best = max(scores, key=lambda k: (round(scores[k], 6), -k))  # rounding: ties go to the smaller k
    return KChoice(best, scores, starts[best])
