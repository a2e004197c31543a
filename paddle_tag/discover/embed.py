"""The embed step of tag discovery: texts → L2-normalised float32 vectors, cached on disk.

Two kinds of embedder, picked by ``Discover.embedder`` through :data:`EMBEDDERS`:

* ``e5`` / ``checkpoint``: a paddle_tag encoder through :class:`paddle_tag.models.embedder.Embedder` — a model
  directory (the converted ``multilingual-e5-small``, a contrastive-pretraining ``best/``) or a fine-tuned
  tagger checkpoint. Mean-pooled (or the checkpoint's pooling), normalised, batched with a progress bar.
* ``tfidf``: character 1-2 gram TF-IDF reduced by TruncatedSVD to ``Discover.tfidf_dim``, normalised — no model,
  seconds on CPU, the fast baseline. Characters rather than words, so it needs no segmenter and never meets an
  unknown word.

:func:`embed_texts` caches the vectors as ``<cache_dir>/<key>.npy`` with a ``<key>.ids.json`` index (item ids,
the texts' SHA-256, the embedder identity); the key hashes identity and texts, and a re-run with the same
embedder and items loads the file instead of embedding again.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from paddle_tag.config import Config
from paddle_tag.engine.checkpoint import checkpoint_embedder
from paddle_tag.errors import ConfigError, DataError, ModelLoadError
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.pretrained import resolve_pretrained
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_json, read_json

logger = logging.getLogger(__name__)


@contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """At most ``threads`` BLAS / OpenMP / faiss threads inside the block (0: leave the defaults)."""
    if threads <= 0:
        yield
        return
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class TfidfEmbedder:
    """Character 1-2 gram TF-IDF → TruncatedSVD(``dim``) → unit rows; fitted on the texts it embeds.

    ``fit_transform(texts)`` → ``(len(texts), min(dim, features - 1))`` float32. Sublinear TF damps repeated
    characters; the SVD (seeded, randomised) turns the sparse counts into a dense space k-means can average.
    """

    identity_name = "tfidf"

    def __init__(self, dim: int = 256, seed: int = 42) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed

    def fit_transform(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, lowercase=True,
                                     dtype=np.float64)
        counts = vectorizer.fit_transform(texts)
        components = min(self.dim, counts.shape[1] - 1, counts.shape[0] - 1)
        if components < 1:
            raise DataError(f"tfidf embedder: {len(texts)} texts with {counts.shape[1]} distinct characters are "
                            "too few to embed")
        svd = TruncatedSVD(n_components=components, algorithm="randomized", n_iter=7, random_state=self.seed)
        return l2_normalise(svd.fit_transform(counts))


class EncoderEmbedder:
    """A paddle_tag encoder (model directory or tagger checkpoint) as an embed step; also embeds single words
    for keyword re-ranking (:meth:`embed_words`)."""

    def __init__(self, model: str, checkpoint: bool = False, prefix: str = "query: ", batch_size: int = 64,
                 max_tokens: Optional[int] = None) -> None:
        self.model, self.checkpoint, self.prefix = model, checkpoint, prefix
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self._embedder = None

    def load(self):
        """The underlying :class:`Embedder`, loaded once (a model load costs seconds, so only when needed)."""
        if self._embedder is None:

            options = {"batch_size": self.batch_size, "max_tokens": self.max_tokens}
            if self.checkpoint:  # the checkpoint's tokenizer carries its own prefix; pooling is the checkpoint's
                self._embedder = checkpoint_embedder(self.model, prefix="", **options)
            else:
                self._embedder = Embedder.from_pretrained(self.model, prefix=self.prefix, pooling="mean", **options)
        return self._embedder

    def fit_transform(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self.load().embed(list(texts), progress=progress, desc="embed")

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        """Unit vectors of single words, in the same space as the items (for KeyBERT-style re-ranking)."""
        return self.load().embed(list(words), progress=False) if words else np.zeros((0, 0), np.float32)


def _encoder(config: Config, checkpoint: bool) -> EncoderEmbedder:
    d = config.Discover
    return EncoderEmbedder(d.model, checkpoint=checkpoint, prefix=d.prefix, batch_size=d.batch_size,
                           max_tokens=config.Data.max_seq_len)


#: Discover.embedder → how to build that embedder from the config (the one place embedders are chosen).
EMBEDDERS: dict[str, Callable[[Config], object]] = {
    "tfidf": lambda config: TfidfEmbedder(config.Discover.tfidf_dim, config.Global.seed),
    "e5": lambda config: _encoder(config, checkpoint=False),
    "checkpoint": lambda config: _encoder(config, checkpoint=True),
}


def build_embedder(config: Config):
    """The embedder ``Discover.embedder`` names (models load lazily, on first use)."""
    kind = config.Discover.embedder
    if kind not in EMBEDDERS:
        raise ConfigError(f"Discover.embedder={kind!r}; expected one of {', '.join(EMBEDDERS)}")
    return EMBEDDERS[kind](config)


def _model_fingerprint(directory: Path) -> str:
    """Names, sizes and mtimes of a model directory's files: a retrained model at the same path misses the cache
    (hashing the weights themselves would cost seconds per run on a 470 MB model)."""
    parts = [f"{p.relative_to(directory)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
             for p in sorted(directory.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def model_directory(config: Config) -> Path:
    """The directory ``Discover.model`` names: a checkpoint path, or a model path / models-cache name."""

    d = config.Discover
    kind = "checkpoint" if d.embedder == "checkpoint" else "model"
    try:
        resolved = Path(d.model if kind == "checkpoint" else resolve_pretrained(d.model) or d.model).expanduser()
    except ModelLoadError as exc:  # its message names Model.pretrained; the key here is Discover.model
        raise ConfigError(f"Discover.model={d.model}: {str(exc).split(': ', 1)[-1]}") from None
    if not resolved.is_dir():
        raise ConfigError(f"Discover.model={d.model}: no such {kind} directory")
    return resolved.resolve()


def embedder_identity(config: Config) -> str:
    """What makes two embeddings of the same texts comparable: kind, model (resolved, fingerprinted), options."""
    d = config.Discover
    if d.embedder == "tfidf":
        return f"tfidf:char1-2:dim={d.tfidf_dim}:seed={config.Global.seed}"
    resolved = model_directory(config)
    prefix = "" if d.embedder == "checkpoint" else d.prefix
    return (f"{d.embedder}:{resolved.resolve()}@{_model_fingerprint(resolved)}:prefix={prefix!r}:"
            f"max_tokens={config.Data.max_seq_len}")


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 over the texts, each length-prefixed so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _load_cached(npy: Path, index: Path, identity: str, digest: str, ids: list[str]) -> Optional[np.ndarray]:
    """The cached vectors when the index matches exactly, else None (a stale or foreign file is recomputed)."""
    if not (npy.is_file() and index.is_file()):
        return None
    try:
        meta = read_json(index)
        vectors = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError):
        logger.warning("unreadable embedding cache %s; embedding again", npy)
        return None
    if (meta.get("identity"), meta.get("texts_sha256"), meta.get("item_ids")) != (identity, digest, ids):
        return None
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] != len(ids):
        return None
    return vectors


def embed_texts(config: Config, texts: list[str], cache_dir: Optional[Path] = None,
                item_ids: Optional[list[str]] = None) -> np.ndarray:
    """L2-normalised float32 ``(len(texts), D)`` embeddings of ``texts`` by the ``Discover.embedder``.

    With ``cache_dir``, vectors are read from / written to ``<cache_dir>/<key>.npy`` + ``<key>.ids.json``
    (written atomically, so an interrupted run never leaves a half file to be trusted later).
    ``item_ids`` (default: ``"0"``, ``"1"``, ...) are recorded in the index and must match on reuse.
    """
    return embed_with(None, config, texts, cache_dir, item_ids)


def embed_with(embedder: Optional[object], config: Config, texts: list[str], cache_dir: Optional[Path] = None,
               item_ids: Optional[list[str]] = None) -> np.ndarray:
    """:func:`embed_texts` with an embedder already built (the pipeline reuses its loaded model for keywords)."""
    if not texts:
        raise DataError("no texts to embed")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"text {i + 1}: empty text")
    ids = [str(i) for i in range(len(texts))] if item_ids is None else [str(i) for i in item_ids]
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} item ids for {len(texts)} texts")
    identity, digest = embedder_identity(config), texts_digest(texts)
    key = hashlib.sha256(f"{identity}\n{digest}\n{json.dumps(ids)}".encode("utf-8")).hexdigest()[:20]
    npy = index = None
    if cache_dir is not None:
        npy, index = Path(cache_dir) / f"{key}.npy", Path(cache_dir) / f"{key}.ids.json"
        cached = _load_cached(npy, index, identity, digest, ids)
        if cached is not None:
            logger.info("embeddings from cache %s", npy)
            return cached
    with thread_limit(config.Discover.threads):
        vectors = (embedder or build_embedder(config)).fit_transform(texts, progress=config.Global.progress)
    vectors = l2_normalise(vectors)
    if npy is not None and index is not None:
        buffer = io.BytesIO()
        np.save(buffer, vectors, allow_pickle=False)
        atomic_write_bytes(npy, buffer.getvalue())
        # the index last: a cache entry counts only once both files are complete
        atomic_write_json(index, {"identity": identity, "texts_sha256": digest, "rows": int(vectors.shape[0]),
                                  "dim": int(vectors.shape[1]), "item_ids": ids})
    return vectors
