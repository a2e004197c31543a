"""Helpers shared by tests (importable as ``helpers`` because setup.cfg puts tests/ on pytest's pythonpath)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

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


def run_tool(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` in a subprocess from the repository root."""
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env=env)


def with_o(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("-o", item)]


def train_on_two_ranks(config: str, overrides: list[str], log_dir: Path) -> dict[str, str]:
    """``tools/train.py`` under ``paddle.distributed.launch`` with 2 CPU ranks (one thread each); asserts it
    succeeded and returns each worker's log by file name (``workerlog.0``, ``workerlog.1``)."""
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(log_dir),
               str(REPO / "tools/train.py"), "-c", config, *with_o(overrides)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    worker_logs = {p.name: p.read_text(errors="replace") for p in sorted(Path(log_dir).glob("workerlog.*"))}
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-3000:]
                                  + "".join(text[-3000:] for text in worker_logs.values()))
    return worker_logs


def predict_with_tool(checkpoint: Path, texts: list[str], labels_path: Path) -> list[dict]:
    """``tools/predict.py`` on ``checkpoint``: one JSON row per text, in order, each with one known tag."""
    proc = run_tool("predict.py", "-o", f"Global.checkpoint={checkpoint}", *[a for t in texts for a in ("--text", t)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    labels = json.loads(Path(labels_path).read_text(encoding="utf-8"))
    assert [r["text"] for r in rows] == texts
    for row in rows:
        assert len(row["tags"]) == 1 and row["tags"][0] in labels
    return rows


def q4_block(scale: float, q: list[int]) -> bytes:
    """One Q4_0 block by hand: fp16 scale (little-endian), then byte j = q[j] (low nibble) | q[j + 16] (high)."""
    assert len(q) == 32 and all(0 <= v <= 15 for v in q)
    return struct.pack("<e", scale) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blobs(k: int, per: int, dim: int = 16, spread: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` well-separated groups of unit vectors around random directions, and their true labels."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(k, dim)))
    truth = np.repeat(np.arange(k), per)
    return unit(centres[truth] + rng.normal(scale=spread, size=(k * per, dim))), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def npz_subset(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` items of a prepared .npz split, with its labels.json."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with np.load(src) as npz:
        np.savez(dst, **{k: npz[k][:n] for k in npz.files})
    shutil.copy(src.parent / "labels.json", dst.parent / "labels.json")
    return dst
