"""The reduce step of tag discovery: embeddings → a smaller space that clustering works in.

``pca`` (default): PCA to ``Discover.dim`` from the covariance — linear, seconds for a million rows, and the same
input always gives the same output. ``umap`` (``pip install umap-learn``, imported only when chosen): non-linear,
seeded, far slower, what BERTopic uses. ``none``: the embeddings as they are.
Every reducer returns unit rows, because clustering compares items by cosine (spherical k-means).
Chosen through :data:`REDUCERS`.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from paddle_tag.config import Config
from paddle_tag.discover.embed import l2_normalise
from paddle_tag.errors import ConfigError

logger = logging.getLogger(__name__)

CHUNK_ROWS = 65_536  # rows per block of the PCA (100 MB at 384 dimensions)
COVARIANCE_MAX_DIM = 4096  # above this many dimensions PCA uses a randomised SVD instead of the covariance


class NoReduce:
    """The null step: clustering sees the embeddings themselves."""

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        return l2_normalise(vectors)


class PCAReducer:
    """PCA to ``dim`` components (fewer when the data has fewer), then unit rows.

    ``fit_transform(X: (N, D))`` → ``(N, min(dim, D, N))`` float32. PCA from the eigenvectors of the ``D × D``
    covariance (float32 products of centred chunks of rows, summed in float64): the components of a float64 SVD
    to 3e-7 on the THUCNews e5 embeddings, in a third of its time and without float64 copies of the N × D input
    (with the full SVD, the 1M × 384 benchmark peaked at 14 GB; now 5.3 GB). sklearn's sign convention (each
    component's largest entry positive) keeps the output identical run to run. Above ``COVARIANCE_MAX_DIM``
    dimensions the covariance itself gets too big and sklearn's randomised SVD, seeded, is used instead.
    """

    def __init__(self, dim: int = 32, seed: int = 42) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        n, d = vectors.shape
        dim = min(self.dim, d, n)
        if dim < self.dim:
            logger.warning("PCA to %d dimensions instead of %d (%d items of %d dimensions)", dim, self.dim, n, d)
        if dim >= d:  # nothing to reduce: a rotation would change no cosine
            return l2_normalise(vectors)
        if d > COVARIANCE_MAX_DIM:
            from sklearn.decomposition import PCA

            pca = PCA(n_components=dim, svd_solver="randomized", random_state=self.seed)
            return l2_normalise(pca.fit_transform(np.asarray(vectors, dtype=np.float32)))
        mean = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
        covariance = np.zeros((d, d))
        for start in range(0, n, CHUNK_ROWS):  # float32 products, summed in float64 chunk by chunk
            centred = np.asarray(vectors[start:start + CHUNK_ROWS], dtype=np.float32) - mean
            covariance += centred.T @ centred
        _, eigenvectors = np.linalg.eigh(covariance)  # ascending eigenvalues
        components = eigenvectors[:, ::-1][:, :dim].T  # (dim, D), largest variance first
        largest = np.abs(components).argmax(axis=1)
        components *= np.sign(components[np.arange(dim), largest])[:, None]
        components = components.astype(np.float32)
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, CHUNK_ROWS):
            out[start:start + CHUNK_ROWS] = (np.asarray(vectors[start:start + CHUNK_ROWS], dtype=np.float32)
                                             - mean) @ components.T
        return l2_normalise(out)


class UMAPReducer:
    """UMAP (cosine metric, seeded) to ``dim`` components, centred, then unit rows. Needs ``umap-learn``.

    Centred because the later steps compare directions: UMAP's layout sits off the origin, so without centring
    every cosine between items is high, and the merge step (centroid cosine >= 0.95) joined all ten THUCNews
    clusters into one tag. PCA's output is centred by construction.
    """

    def __init__(self, dim: int = 32, seed: int = 42, n_neighbors: int = 15) -> None:
        self.dim, self.seed, self.n_neighbors = dim, seed, n_neighbors

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        try:
            import umap  # heavy (numba) and optional: imported only when a config asks for it
        except ImportError:
            raise ConfigError("Discover.reduce=umap needs the umap-learn package: pip install umap-learn "
                              "(or use Discover.reduce=pca)") from None
        n = vectors.shape[0]
        if n <= self.dim + 1:
            raise ConfigError(f"Discover.reduce=umap: {n} items are too few for dim={self.dim}")
        reducer = umap.UMAP(n_components=self.dim, n_neighbors=min(self.n_neighbors, n - 1), metric="cosine",
                            random_state=self.seed, n_jobs=1)  # seeded UMAP runs on one thread: repeatable
        layout = reducer.fit_transform(vectors)
        return l2_normalise(layout - layout.mean(axis=0))


#: Discover.reduce → its step, built from the config.
REDUCERS: dict[str, Callable[[Config], object]] = {
    "pca": lambda config: PCAReducer(config.Discover.dim, config.Global.seed),
    "umap": lambda config: UMAPReducer(config.Discover.dim, config.Global.seed),
    "none": lambda config: NoReduce(),
}


def build_reducer(config: Config):
    kind = config.Discover.reduce
    if kind not in REDUCERS:
        raise ConfigError(f"Discover.reduce={kind!r}; expected one of {', '.join(REDUCERS)}")
    return REDUCERS[kind](config)
