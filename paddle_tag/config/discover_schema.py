"""The ``Discover`` section of the config schema (``tools/discover.py``), in its own module to keep
:mod:`paddle_tag.config.schema` short; :class:`~paddle_tag.config.schema.Config` holds it like any section."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from paddle_tag.errors import ConfigError


@dataclass
class DiscoverConfig:
    """Tag discovery (``tools/discover.py``): embed → reduce → cluster → name, over ``Data.train_path``'s texts.

    Similarities (``min_similarity``, ``outlier_threshold``, ``merge_threshold``) are cosines in the reduced space
    the clusters are found in (PCA centres the data, so they spread over [-1, 1] for any embedder); the tags'
    centroids and the items' scores are in the embedder's space, where ``tools/assign.py`` compares new items.
    ``Global.seed`` seeds every random step.
    """

    embedder: Literal["e5", "tfidf", "checkpoint"] = "e5"  # e5 = a pretrained encoder dir; checkpoint = a tagger
    model: str = "multilingual-e5-small"  # model directory / models-cache name (e5), or a checkpoint directory
    prefix: str = "query: "  # put before every text by pretrained encoders (e5 wants "query: " for clustering)
    batch_size: int = 64  # encoder batch size
    tfidf_dim: int = 256  # tfidf: TruncatedSVD components of the character 1-2 gram TF-IDF matrix
    reduce: Literal["pca", "umap", "none"] = "pca"  # umap needs umap-learn (pip install -e .[umap])
    dim: int = 32  # reduced dimension (pca / umap)
    cluster: Literal["kmeans", "hdbscan"] = "kmeans"  # faiss spherical k-means, or scikit-learn HDBSCAN
    k: int = 0  # k-means clusters; 0 = chosen in k_min..k_max (best silhouette on a sample; discover/kmeans.py)
    k_min: int = 5  # smallest k the automatic choice tries
    k_max: int = 30  # largest k the automatic choice tries
    k_step: int = 1  # candidate k values: k_min, k_min + k_step, ..., k_max
    sample_size: int = 5000  # items (fixed-seed sample) the automatic choice of k is computed on
    kmeans_iters: int = 25  # k-means iterations of the final clustering
    kmeans_redo: int = 3  # k-means restarts (faiss nredo) of a given k / of the k search's over-clustering
    min_cluster_size: int = 15  # hdbscan
    min_similarity: float = 0.0  # cluster members less similar than this to their centroid become outliers
    outlier_threshold: float = 0.3  # outliers join the nearest centroid when their cosine to it is >= this
    merge_threshold: float = 0.95  # clusters whose centroids are at least this similar are merged
    top_keywords: int = 10  # keywords kept per tag
    min_df: int = 2  # a word must occur in at least this many items to be a keyword
    min_word_len: int = 2  # shorter words (single characters) are not keywords
    label_words: int = 3  # keywords joined with "·" into the tag name
    rerank_keywords: bool = False  # encoders only: order candidate keywords by similarity to the centroid
    stopwords_path: Optional[str] = "data/peoples_daily/stopwords.txt"  # python tools/prepare_data.py peoples_daily
    samples_per_tag: int = 3  # sample items per tag in the report
    db_url: Optional[str] = None  # SQLAlchemy URL; null = sqlite:///<Global.output_dir>/tags.db
    # CPU threads for BLAS / OpenMP / faiss during discovery; 0 = the libraries' default (OMP_NUM_THREADS).
    # 1 on a shared machine: spinning BLAS threads there cost 3-4x the CPU time (measured on 2 busy cores)
    threads: int = 0

    def __post_init__(self) -> None:
        # the loader checks types; these are the value ranges, checked as soon as the section is built
        positive = ("batch_size", "tfidf_dim", "dim", "k_min", "k_max", "k_step", "sample_size", "kmeans_iters",
                    "kmeans_redo", "top_keywords", "min_df", "min_word_len", "label_words", "samples_per_tag")
        for key in positive:
            value = getattr(self, key)
            if value < 1:
                raise ConfigError(f"Discover.{key} must be >= 1, got {value}")
        if self.threads < 0:
            raise ConfigError(f"Discover.threads must be >= 0 (0 = the libraries' default), got {self.threads}")
        if self.k < 0 or self.k == 1:
            raise ConfigError(f"Discover.k must be 0 (automatic) or >= 2, got {self.k}")
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ConfigError(f"Discover.k_min..k_max must satisfy 2 <= k_min <= k_max, got {self.k_min}..{self.k_max}")
        if self.min_cluster_size < 2:
            raise ConfigError(f"Discover.min_cluster_size must be >= 2, got {self.min_cluster_size}")
        for key in ("min_similarity", "outlier_threshold", "merge_threshold"):
            if not -1.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"Discover.{key} is a cosine similarity in [-1, 1], got {getattr(self, key)}")
        if self.sample_size < 2 * self.k_max and self.k == 0:
            raise ConfigError(f"Discover.sample_size={self.sample_size} is too small to choose k up to "
                              f"k_max={self.k_max}; use at least {2 * self.k_max}")
        if not self.model.strip():
            raise ConfigError("Discover.model must name a model directory, a models-cache name or a checkpoint")
