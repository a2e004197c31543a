"""The unlabeled Chinese corpus for contrastive text pretraining, built from the other real sources.

``pretrain_zh/train.jsonl`` (``{"text": ...}``) holds the training texts of three sets, labels
dropped: People's Daily 1998 paragraphs (news prose), THUCNews titles and the tagged poems. Only
their *train* splits are used, so nothing of a dev or test split is seen during pretraining.
Exact duplicates are dropped and the order is shuffled with a fixed seed. ``SOURCE.json`` records
the counts per source and the sha256 of each input file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from paddle_tag.data.readers import read_examples
from paddle_tag.data.sources import registry
from paddle_tag.data.sources.peoples_daily import prepare_peoples_daily
from paddle_tag.data.sources.poetry import prepare_poetry
from paddle_tag.data.sources.thucnews import prepare_thucnews
from paddle_tag.utils.io import atomic_write_text, sha256_file, write_jsonl

# source name → (preparer, its folder next to pretrain_zh/)
PARTS = {"peoples_daily": (prepare_peoples_daily, "peoples_daily"),
         "thucnews": (prepare_thucnews, "thucnews"),
         "poetry": (prepare_poetry, "poetry")}


def prepare_pretrain_zh(out_dir: str | os.PathLike[str] = "data/pretrain_zh", seed: int = 42,
                        cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Prepare the three sources (next to ``out_dir``) and write their train texts as one file; return counts."""
    out = Path(out_dir)
    inputs = {}
    for name, (preparer, folder) in PARTS.items():
        preparer(out_dir=out.parent / folder, seed=seed, cache_dir=cache_dir, force=force)
        inputs[name] = out.parent / folder / "train.jsonl"
    settings = {"seed": seed, "inputs": {name: sha256_file(path) for name, path in inputs.items()}}
    skipped = registry.prepared_counts("pretrain_zh", out, settings, force)
    if skipped is not None:
        return skipped
    seen: set[str] = set()
    texts, per_source = [], {}
    for name, path in inputs.items():
        kept = 0
        for example in read_examples(path, require_labels=False):
            if example.text not in seen:
                seen.add(example.text)
                texts.append(example.text)
                kept += 1
        per_source[name] = kept
    order = np.random.RandomState(seed).permutation(len(texts))
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", ({"text": texts[i]} for i in order))
    counts = {"train": len(texts), "per_source": per_source}
    doc = {"made_from": {name: str(path) for name, path in inputs.items()},
           "steps": ["train splits of peoples_daily, thucnews and poetry, labels dropped",
                     "exact duplicates dropped", f"shuffled with seed {seed}"],
           "settings": settings, "outputs": {"train.jsonl": sha256_file(out / "train.jsonl")}, "counts": counts}
    atomic_write_text(out / "SOURCE.json", json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return counts
