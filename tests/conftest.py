"""Shared fixtures: the real registry data (prepared once into the repo's data/ folder) and tiny configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA, read_jsonl, write_subset

from paddle_tag.data.sources import SUBDIRS, prepare


@pytest.fixture(scope="session")
def real_data() -> dict[str, Path]:
    """THUCNews titles, tagged poems and the Chinese BERT vocab, fetched from the registries (cached)."""
    for name in ("thucnews", "poetry", "vocab"):
        prepare(name, DATA)
    return {name: DATA / SUBDIRS[name] for name in ("thucnews", "poetry", "vocab")}


@pytest.fixture(scope="session")
def vocab_file(real_data) -> str:
    return str(real_data["vocab"] / "vocab.txt")


@pytest.fixture(scope="session")
def thucnews_small(real_data, tmp_path_factory) -> dict[str, Path]:
    """400 train / 100 dev real THUCNews titles."""
    root = tmp_path_factory.mktemp("thucnews_small")
    return {"train": write_subset(real_data["thucnews"] / "train.jsonl", root / "train.jsonl", 400),
            "dev": write_subset(real_data["thucnews"] / "dev.jsonl", root / "dev.jsonl", 100)}


@pytest.fixture(scope="session")
def poetry_small(real_data, tmp_path_factory) -> dict[str, Path]:
    """Real tagged poems: 400 train; dev keeps only poems whose tags all occur in that train subset."""
    root = tmp_path_factory.mktemp("poetry_small")
    train = write_subset(real_data["poetry"] / "train.jsonl", root / "train.jsonl", 400)
    seen = {tag for row in read_jsonl(train) for tag in row["labels"]}
    dev_rows = [r for r in read_jsonl(real_data["poetry"] / "dev.jsonl") if set(r["labels"]) <= seen][:100]
    dev = root / "dev.jsonl"
    dev.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev_rows), encoding="utf-8")
    return {"train": train, "dev": dev}



@pytest.fixture(scope="session")
def tiny_checkpoint(thucnews_small, vocab_file, tmp_path_factory) -> Path:
    """A briefly trained tiny multi-class checkpoint on real titles (for eval / predict tests)."""
    from helpers import REPO, tiny_overrides
    from paddle_tag.config import load_config
    from paddle_tag.engine.builder import build_trainer

    out = tmp_path_factory.mktemp("tiny_ckpt")
    config = load_config(REPO / "configs/text/thucnews_ernie_small.yaml",
                         tiny_overrides(thucnews_small, out, vocab_file, Global__max_steps=10,
                                        Data__test_path="null"))
    build_trainer(config).fit()
    return out / "best"
