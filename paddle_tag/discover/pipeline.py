"""Tag discovery as a recipe: read items → embed → reduce → cluster → name → a :class:`Taxonomy` + its files.

:class:`DiscoveryPipeline` holds one step object per stage, each picked from its module's name → class dict
(``EMBEDDERS``, ``REDUCERS``, ``CLUSTERERS``) by the ``Discover`` config section. Between clustering and naming,
near-duplicate clusters are merged and outliers re-assigned, both judged by cosines in the reduced space the
clusters were found in (see :mod:`.cluster` and :mod:`.name`); tag centroids and item scores are in the
embedder's space, where ``tools/assign.py`` compares new items. Tags are
sorted by size (largest first, ties by cluster order) and keyed 0..k-1; every random step takes
``Global.seed``, so the same config and items give the same tags, keys and assignments.

Items: ``Data.train_path`` in the foundation's JSONL format (``{"text": ..., "labels": [...]}``, optional
``"id"``). Blank texts are skipped and counted (an unlabeled crawl has some; one should not stop a run);
broken JSON, a missing ``text`` or an empty file are errors naming the file and line.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from paddle_tag.config import Config, save_config
from paddle_tag.data.readers import check_unicode, item_id, read_json_lines
from paddle_tag.discover.cluster import build_clusterer, resolve_outliers
from paddle_tag.discover.embed import EncoderEmbedder, build_embedder, embed_with, model_directory, thread_limit
from paddle_tag.discover.name import build_namer, merge_similar
from paddle_tag.discover.reduce import build_reducer
from paddle_tag.discover.report import write_report
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.metrics.clustering import clustering_metrics
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_json, write_jsonl

logger = logging.getLogger(__name__)


@dataclass
class Corpus:
    """The items of a discovery run; ``labels[i]`` is item i's first known label (evaluation only) or None."""

    items: list[Item]
    labels: list[Optional[str]]
    skipped_blank: int = 0
    source: str = ""


def read_items(path: str | Path) -> Corpus:
    """Items of a JSONL file; ``id`` = the ``"id"`` field, else the 1-based line number (stable across edits
    that only append). Blank texts are skipped and counted; anything else malformed raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"items file not found: {path}")
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise DataError(f"{path}: discovery reads JSON Lines (.jsonl) items, one {{\"text\": ...}} a line")
    skipped, seen = 0, set()

    def parse(obj: dict, where: str, number: int) -> Optional[tuple[Item, Optional[str]]]:
        nonlocal skipped
        if "text" not in obj:
            raise DataError(f"{where}: expected a JSON object with a \"text\"")
        text = obj["text"]
        if not isinstance(text, str):
            raise DataError(f"{where}: \"text\" must be a string, got {type(text).__name__}")
        if not text.strip():
            skipped += 1
            return None
        given = item_id(obj.get("id"), where)
        key = given if given is not None else str(number)
        if key in seen:
            raise DataError(f"{where}: duplicate item id {key!r}")
        seen.add(key)
        found = obj.get("labels")
        first = found[0] if isinstance(found, list) and found and isinstance(found[0], str) else None
        return Item(item_id=key, text=check_unicode(text.strip(), where)), first

    rows = read_json_lines(path, parse, what=None)
    items, labels = [item for item, _ in rows], [label for _, label in rows]
    if not items:
        what = f"only {skipped} blank texts" if skipped else "no items (the file is empty)"
        raise DataError(f"{path}: {what}")
    if skipped:
        logger.warning("%s: skipped %d items with blank text", path, skipped)
    return Corpus(items, labels, skipped, str(path))


@dataclass
class DiscoveryResult:
    """A run's taxonomy, the embeddings it was found in, final labels (tag keys, -1 = unassigned) and info."""

    taxonomy: Taxonomy
    embeddings: np.ndarray
    labels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class DiscoveryPipeline:
    """embed → reduce → cluster → name, each step built from the config; :meth:`run` turns items into tags."""

    def __init__(self, config: Config) -> None:
        d = config.Discover
        self.config = config
        self.embedder = build_embedder(config)
        if d.rerank_keywords and not isinstance(self.embedder, EncoderEmbedder):
            raise ConfigError("Discover.rerank_keywords needs an encoder (Discover.embedder=e5 or checkpoint); "
                              "the tfidf embedder cannot embed single words")
        self.reducer = build_reducer(config)
        self.clusterer = build_clusterer(config)
        self.namer = build_namer(config)

    @property
    def steps(self) -> list[tuple[str, object]]:
        return [("embed", self.embedder), ("reduce", self.reducer), ("cluster", self.clusterer),
                ("name", self.namer)]

    def embedder_name(self) -> str:
        """What :class:`Taxonomy` records as its embedder: the resolved model directory, or ``tfidf``."""
        return str(model_directory(self.config)) if isinstance(self.embedder, EncoderEmbedder) else "tfidf"

    def run(self, items: list[Item], cache_dir: Optional[Path] = None) -> DiscoveryResult:
        with thread_limit(self.config.Discover.threads):
            return self._run(items, cache_dir)

    def _run(self, items: list[Item], cache_dir: Optional[Path]) -> DiscoveryResult:
        d, timings = self.config.Discover, {}
        texts, ids = [it.text for it in items], [it.item_id for it in items]
        started = time.perf_counter()
        embeddings = embed_with(self.embedder, self.config, texts, cache_dir, ids)
        timings["embed"] = time.perf_counter() - started

        started = time.perf_counter()
        reduced = self.reducer.fit_transform(embeddings)
        timings["reduce"] = time.perf_counter() - started

        started = time.perf_counter()
        clustering = self.clusterer.fit_predict(reduced)
        # merging and outliers are decided where the clusters were found (see resolve_outliers for why)
        labels, merges = merge_similar(reduced, clustering.labels, d.merge_threshold)
        labels, scores, centroids, outliers = resolve_outliers(reduced, embeddings, labels, d.min_similarity,
                                                                d.outlier_threshold)
        labels, centroids = sort_by_size(labels, centroids)
        timings["cluster"] = time.perf_counter() - started

        started = time.perf_counter()
        embed_words = self.embedder.embed_words if d.rerank_keywords else None
        names = self.namer.fit(texts, labels, centroids, embed_words)
        timings["name"] = time.perf_counter() - started

        sizes = np.bincount(labels[labels >= 0], minlength=len(centroids))
        tags = [Tag(key=key, name=names[key].name, keywords=names[key].keywords, centroid=centroids[key],
                    size=int(sizes[key])) for key in range(len(centroids))]
        assignments = [Assignment(item_id=i, tag_key=int(t) if t >= 0 else None, score=round(float(s), 6))
                       for i, t, s in zip(ids, labels, scores)]
        params = {**dataclasses.asdict(d), "seed": self.config.Global.seed}
        taxonomy = Taxonomy(tags=tags, items=list(items), assignments=assignments, embedder=self.embedder_name(),
                            params=params)
        info = {"clustering": clustering.info, "merged": merges, "outliers": outliers, "k": len(tags),
                "timings_s": {k: round(v, 3) for k, v in timings.items()}}
        return DiscoveryResult(taxonomy, embeddings, labels, info)


def sort_by_size(labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber clusters largest first (ties: the earlier cluster first); -1 stays -1."""
    k = len(centroids)
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    order = sorted(range(k), key=lambda c: (-int(sizes[c]), c))
    new_key = np.empty(k, dtype=np.int64)
    new_key[order] = np.arange(k)
    return np.where(labels >= 0, new_key[np.maximum(labels, 0)], -1), centroids[order]


def database_url(config: Config) -> str:
    """``Discover.db_url``, or a SQLite file ``tags.db`` in ``Global.output_dir`` (absolute path)."""
    if config.Discover.db_url:
        return config.Discover.db_url
    return f"sqlite:///{(Path(config.Global.output_dir) / 'tags.db').resolve()}"


def discover(config: Config) -> tuple[Corpus, DiscoveryResult]:
    """Read ``Data.train_path``'s items and run the pipeline, caching embeddings under the output directory."""
    if not config.Data.train_path:
        raise ConfigError("Data.train_path must name the items to discover tags in (a .jsonl file)")
    pipeline = DiscoveryPipeline(config)  # config errors before reading a big file
    corpus = read_items(config.Data.train_path)
    result = pipeline.run(corpus.items, cache_dir=Path(config.Global.output_dir) / "embeddings")
    result.info["items"] = len(corpus.items)
    result.info["skipped_blank"] = corpus.skipped_blank
    return corpus, result


def taxonomy_record(taxonomy: Taxonomy) -> dict[str, Any]:
    """``taxonomy.json``: tags (key, name, size, keywords with weights) and how they were made; centroids go to
    ``centroids.npy`` (row = key). Weights are rounded so the file is byte-identical across repeated runs."""
    return {"format": 1, "embedder": taxonomy.embedder, "dim": taxonomy.dim, "k": len(taxonomy.tags),
            "items": len(taxonomy.items), "outlier_share": round(taxonomy.outlier_share(), 6),
            "params": taxonomy.params,
            "tags": [{"key": t.key, "name": t.name, "size": t.size,
                      "keywords": [[w, round(float(x), 6)] for w, x in t.keywords]} for t in taxonomy.tags]}


def write_run(config: Config, corpus: Corpus, result: DiscoveryResult,
              pseudo_labels: Optional[str | Path] = None) -> dict[str, Any]:
    """Write the run's files to ``Global.output_dir`` (each atomically) and return ``metrics.json``'s content.

    ``taxonomy.json``, ``centroids.npy``, ``assignments.jsonl`` (``{"id", "tag", "name", "score"}``; ``tag`` null
    = unassigned, its score the cosine to the nearest tag), ``metrics.json``, ``report.png`` / ``report.md``,
    the resolved ``config.yaml``; with ``pseudo_labels``, assigned items as training JSONL
    ``{"text", "labels": [tag name]}``.
    """


    out, taxonomy = Path(config.Global.output_dir), result.taxonomy
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    atomic_write_json(out / "taxonomy.json", taxonomy_record(taxonomy))
    buffer = io.BytesIO()
    np.save(buffer, np.stack([t.centroid for t in taxonomy.tags]).astype(np.float32), allow_pickle=False)
    atomic_write_bytes(out / "centroids.npy", buffer.getvalue())
    names = {t.key: t.name for t in taxonomy.tags}
    write_jsonl(out / "assignments.jsonl", ({"id": a.item_id, "tag": a.tag_key, "name": names.get(a.tag_key),
                                             "score": a.score} for a in taxonomy.assignments))
    metrics: dict[str, Any] = {"items": result.info.get("items", len(taxonomy.items)),
                               "skipped_blank": result.info.get("skipped_blank", 0), "k": len(taxonomy.tags),
                               "outlier_share": round(taxonomy.outlier_share(), 6), **result.info}
    if all(label is not None for label in corpus.labels):  # evaluation only when every item has a label
        metrics.update(clustering_metrics(corpus.labels, result.labels))
    started = time.perf_counter()
    with thread_limit(config.Discover.threads):
        write_report(out, taxonomy, result.embeddings, result.labels, metrics, seed=config.Global.seed,
                     samples=config.Discover.samples_per_tag)
    metrics["timings_s"]["report"] = round(time.perf_counter() - started, 3)
    atomic_write_json(out / "metrics.json", metrics)
    if pseudo_labels:
        write_jsonl(pseudo_labels, ({"text": it.text, "labels": [names[a.tag_key]]}
                                    for it, a in zip(taxonomy.items, taxonomy.assignments) if a.tag_key is not None))
    return metrics
