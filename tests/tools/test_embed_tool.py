"""``tools/embed.py`` end to end on real titles with a tiny model: the .npy rows, its sidecar, the user errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, read_jsonl

from paddle_tag.models.embedder import Embedder


def run_embed(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "embed.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: "), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def titles_file(real_data, tmp_path_factory):
    rows = read_jsonl(real_data["thucnews"] / "test.jsonl")[:30]
    path = tmp_path_factory.mktemp("embed_input") / "titles.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path, [r["text"] for r in rows]


def test_embed_writes_unit_rows_and_a_sidecar(tiny_bert_dir, titles_file, tmp_path):
    path, texts = titles_file
    proc = run_embed(tmp_path, "--model", str(tiny_bert_dir), "--input", str(path), "--output", "out/emb.npy")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "30 texts" in proc.stdout
    vectors = np.load(tmp_path / "out" / "emb.npy", allow_pickle=False)
    assert vectors.shape == (30, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # row i is text i, as the library computes it with the tool's default "passage: " prefix
    expected = Embedder.from_pretrained(str(tiny_bert_dir), prefix="passage: ").embed(texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)

    sidecar = json.loads((tmp_path / "out" / "emb.json").read_text(encoding="utf-8"))
    assert sidecar["rows"] == 30 and sidecar["dim"] == 32 and sidecar["prefix"] == "passage: "
    assert sidecar["pooling"] == "mean" and sidecar["model"] == str(tiny_bert_dir)
    assert sidecar["input"] == str(path) and sidecar["max_tokens"] == 64


def test_embed_user_errors(tiny_bert_dir, titles_file, tmp_path):
    path, _ = titles_file
    assert_user_error(run_embed(tmp_path, "--model", str(tiny_bert_dir), "--input", str(path), "--output", "x.txt"),
                      "--output must end in .npy")
    missing = tmp_path / "missing.jsonl"
    assert_user_error(run_embed(tmp_path, "--model", str(tiny_bert_dir), "--input", str(missing),
                                "--output", "emb.npy"), "data file not found", str(missing))
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "emb.npy").exists()
