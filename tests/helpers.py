"""Helpers shared by tests (importable as ``helpers`` because setup.cfg puts tests/ on pytest's pythonpath)."""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

# A tiny ERNIE (2 layers, hidden 32) that trains in seconds on CPU: real code path, small numbers.
TINY_MODEL = ["Model.num_layers=2", "Model.hidden_size=32", "Model.num_heads=2", "Model.intermediate_size=64",
              "Model.max_position=64"]

def write_subset(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` lines of a prepared JSONL split."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]
    dst.write_text("".join(lines), encoding="utf-8")
    return dst


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def tiny_overrides(data: dict[str, Path], out: Path, vocab: str, task: str = "multi_class", **extra) -> list[str]:
    """``-o`` overrides for a quick real training run of the tiny model."""
    items = [*TINY_MODEL, f"Model.vocab_file={vocab}", f"Data.train_path={data['train']}",
             f"Data.eval_path={data['dev']}", f"Data.task={task}", f"Global.output_dir={out}",
             "Global.progress=false", "Data.max_seq_len=48", "Data.batch_size=16", "Optimizer.lr=3e-3",
             "Optimizer.warmup_ratio=0.05"]
    return items + [f"{k.replace('__', '.')}={v}" for k, v in extra.items()]
