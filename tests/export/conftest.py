"""Fixtures for the export tests: tiny real taggers trained briefly on real data, and their exports."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, tiny_overrides

from paddle_tag.config import load_config

#: a poem longer than 32 tokens is read as windows of 32 sharing 8; a wide part on 1-3 character n-grams (idf)
LONG_TEXT = ["Data.on_long_text=windows", "Data.window_overlap=8", "Data.max_windows=6", "Model.wide=true",
             "Model.wide_buckets=4096", "Model.wide_ngram_max=3", "Model.wide_idf=true",
             "Model.window_pooling=attention"]


def train_tiny(config_file: str, data: dict[str, Path], out: Path, vocab: str, task: str, steps: int,
               extra: tuple[str, ...] = ()) -> Path:
    from paddle_tag.engine.builder import build_run

    overrides = tiny_overrides(data, out, vocab, task=task, Global__max_steps=steps, Data__test_path="null")
    config = load_config(REPO / config_file, overrides + list(extra))
    build_run(config).fit()
    return out / "best"


def export_overrides(ckpt: Path, out: Path, **extra) -> list[str]:
    """``-o`` overrides that export ``ckpt`` into ``out`` (config = the checkpoint's own config.yaml)."""
    items = [f"Global.checkpoint={ckpt}", f"Export.output_dir={out}", "Global.progress=false"]
    return items + [f"{k.replace('__', '.')}={v}" for k, v in extra.items()]


def export_config(ckpt: Path, out: Path, **extra):
    return load_config(ckpt / "config.yaml", export_overrides(ckpt, out, **extra))


@pytest.fixture(scope="session")
def export_cfg():
    """``export_cfg(ckpt, out, Export__key=value, ...)`` → a Config that exports ``ckpt`` into ``out``."""
    return export_config


@pytest.fixture(scope="session")
def export_args():
    """``export_args(ckpt, out, ...)`` → the same as ``-o`` arguments for tools/export_model.py."""
    return lambda ckpt, out, **extra: [a for item in export_overrides(ckpt, out, **extra) for a in ("-o", item)]


@pytest.fixture(scope="session")
def mc_checkpoint(thucnews_small, vocab_file, tmp_path_factory) -> Path:
    """Tiny multi-class ERNIE, 40 steps on 400 real THUCNews titles (barely trained: enough for parity)."""
    return train_tiny("configs/text/thucnews_ernie_small.yaml", thucnews_small, tmp_path_factory.mktemp("mc"),
                      vocab_file, "multi_class", 40)


@pytest.fixture(scope="session")
def ml_checkpoint(poetry_small, vocab_file, tmp_path_factory) -> Path:
    """Tiny multi-label ERNIE, 30 steps on 400 real tagged poems, thresholds tuned on the dev subset."""
    return train_tiny("configs/text/poetry_ernie_small.yaml", poetry_small, tmp_path_factory.mktemp("ml"),
                      vocab_file, "multi_label", 30)


@pytest.fixture(scope="session")
def long_checkpoint(poetry_small, vocab_file, tmp_path_factory) -> Path:
    """Tiny multi-label ERNIE reading poems as windows of 32 tokens, with a wide part, 30 steps."""
    return train_tiny("configs/text/poetry_ernie_small.yaml", poetry_small, tmp_path_factory.mktemp("long"),
                      vocab_file, "multi_label", 30, ("Data.max_seq_len=32", *LONG_TEXT))


@pytest.fixture(scope="session")
def long_export(long_checkpoint, tmp_path_factory) -> Path:
    from paddle_tag.export import export_checkpoint

    return export_checkpoint(export_config(long_checkpoint, tmp_path_factory.mktemp("long_export") / "export",
                                           Export__parity_samples=100))


@pytest.fixture(scope="session")
def mc_export(mc_checkpoint, tmp_path_factory) -> Path:
    from paddle_tag.export import export_checkpoint

    return export_checkpoint(export_config(mc_checkpoint, tmp_path_factory.mktemp("mc_export") / "export"))


@pytest.fixture(scope="session")
def ml_export(ml_checkpoint, tmp_path_factory) -> Path:
    from paddle_tag.export import export_checkpoint

    return export_checkpoint(export_config(ml_checkpoint, tmp_path_factory.mktemp("ml_export") / "export"))
