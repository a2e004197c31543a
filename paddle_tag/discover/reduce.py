"""The reduce step of tag discovery: embeddings → a smaller space that clustering works in.

``pca`` (default): seeded PCA to ``Discover.dim`` — linear, seconds for a million rows, and the same input
always gives the same output. ``umap`` (``pip install umap-learn``, imported only when chosen): non-linear,
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


class NoReduce:
    """The null step: clustering sees the embeddings themselves."""

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        return l2_normalise(vectors)


class PCAReducer:
    """PCA to ``dim`` components (fewer when the data has fewer), then unit rows.

    ``fit_transform(X: (N, D))`` → ``(N, min(dim, D, N))`` float32. The full SVD (LAPACK) rather than the
    randomised one below 2,000 columns × 200,000 rows keeps results exact; sklearn's sign convention
    (``svd_flip``) keeps component signs stable across runs.
    """

    def __init__(self, dim: int = 32, seed: int = 42) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        n, d = vectors.shape
        dim = min(self.dim, d, n)
        if dim < self.dim:
            logger.warning("PCA to %d dimensions instead of %d (%d items of %d dimensions)", dim, self.dim, n, d)
        if dim >= d:  # nothing to reduce: a rotation would change no cosine
            return l2_normalise(vectors)
        solver = "full" if n * d <= 200_000 * 2_000 else "randomized"
        pca = PCA(n_components=dim, svd_solver=solver, random_state=self.seed)
        return l2_normalise(pca.fit_transform(np.asarray(vectors, dtype=np.float64)))


class UMAPReducer:
    """UMAP (cosine metric, seeded) to ``dim`` components, then unit rows. Needs ``umap-learn``."""

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
                            random_state=self.seed)  # a seed makes UMAP single-threaded, hence repeatable
        return l2_normalise(reducer.fit_transform(vectors))


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
