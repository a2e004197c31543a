"""Title vectors of the two-tower item tower (``paddle_tag.engine.title_vectors``), with a tiny random BERT: embedded
once and cached with a sidecar, read back from the cache, embedded again when the file or its items do not match."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, read_jsonl

from paddle_tag.data.sequences import read_interactions
from paddle_tag.engine.title_vectors import title_vectors
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.embedder import Embedder


def small_log(folder: Path, titles: dict[int, str] | None = None) -> Path:
    """The first 30 MovieLens-100K items (real titles; ``titles`` replaces some) and one user who saw them."""
    from paddle_tag.data.sources import prepare

    prepare("movielens_100k", DATA)
    rows = read_jsonl(DATA / "movielens_100k/items.jsonl")[:30]
    for index, title in (titles or {}).items():
        rows[index]["title"] = title
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "sequences.jsonl").write_text(json.dumps({"user": "u", "items": [r["id"] for r in rows]}) + "\n",
                                            encoding="utf-8")
    return folder


def test_vectors_are_cached_with_a_sidecar_and_read_back(tiny_bert_dir, tmp_path, capsys):
    data = read_interactions(small_log(tmp_path / "log", {4: ""}))
    cache = tmp_path / "cache"
    vectors = title_vectors(data, str(tiny_bert_dir), cache, progress=False)
    assert vectors.shape == (31, 32) and vectors.dtype == np.float32
    assert not vectors[0].any() and not vectors[5].any()  # padding and the item without a title
    np.testing.assert_allclose(np.linalg.norm(np.delete(vectors, [0, 5], axis=0), axis=1), 1.0, atol=1e-5)
    expected = Embedder.from_pretrained(str(tiny_bert_dir), prefix="passage: ").embed([data.titles[1]])[0]
    np.testing.assert_allclose(vectors[1], expected, atol=1e-5)

    [path] = cache.glob("*.safetensors")
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["model"] == str(tiny_bert_dir) and sidecar["prefix"] == "passage: " and sidecar["rows"] == 31
    assert {"model_sha256", "items_sha256", "vectors_sha256"} <= set(sidecar)
    capsys.readouterr()
    again = title_vectors(data, str(tiny_bert_dir), cache, progress=False)
    assert "30 title vectors from" in capsys.readouterr().out
    np.testing.assert_array_equal(again, vectors)


def test_a_changed_file_or_item_set_is_embedded_again(tiny_bert_dir, tmp_path, capsys):
    data = read_interactions(small_log(tmp_path / "log"))
    cache = tmp_path / "cache"
    vectors = title_vectors(data, str(tiny_bert_dir), cache, progress=False)
    [path] = cache.glob("*.safetensors")
    blob = bytearray(path.read_bytes())
    blob[-4:] = b"\x00\x00\x80\x7f"  # the last float becomes +inf: same size, still readable
    path.write_bytes(bytes(blob))
    capsys.readouterr()
    again = title_vectors(data, str(tiny_bert_dir), cache, progress=False)
    assert "changed after it was written" in capsys.readouterr().out
    np.testing.assert_allclose(again, vectors, atol=1e-6)
    assert np.isfinite(title_vectors(data, str(tiny_bert_dir), cache, progress=False)).all()  # the rewritten file

    retitled = read_interactions(small_log(tmp_path / "other", {2: "A Title That Was Changed (1995)"}))
    other = title_vectors(retitled, str(tiny_bert_dir), cache, progress=False)
    assert len(list(cache.glob("*.safetensors"))) == 2  # its own file: the key hashes the titles
    changed = np.flatnonzero(np.abs(other - vectors).max(axis=1) > 1e-6)
    assert changed.tolist() == [3]

    # a sidecar that names another model: not trusted
    sidecar = path.with_suffix(".json")
    sidecar.write_text(sidecar.read_text(encoding="utf-8").replace(str(tiny_bert_dir), "someone-else"),
                       encoding="utf-8")
    capsys.readouterr()
    title_vectors(data, str(tiny_bert_dir), cache, progress=False)
    assert "made for another model" in capsys.readouterr().out


def test_a_missing_model_is_a_clear_error(tmp_path):
    data = read_interactions(small_log(tmp_path / "log"))
    with pytest.raises(ModelLoadError, match="not a local model directory"):
        title_vectors(data, str(tmp_path / "no-model"), tmp_path / "cache", progress=False)
