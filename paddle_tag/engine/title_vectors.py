"""Frozen text vectors of the item titles (the two-tower item tower's text input), embedded once and cached.

``<cache_dir>/<model>-<key>.safetensors`` holds ``vectors`` ``(N + 1, D)`` float32: row ``i`` is item ``i``'s title
embedded by the project's :class:`~paddle_tag.models.embedder.Embedder` (e5: ``"passage: "`` prefix, mean pooling,
unit length); row 0 (padding) and items without a title are all 0. ``key`` hashes the model's files, the prefix and
the item ids with their titles. The JSON sidecar next to it records the model name, the model files' SHA-256, the
prefix, the items' SHA-256 and the vectors file's SHA-256: a cache file whose sidecar is missing or disagrees
(another model, another item set, a file changed after writing) is not used but embedded again. Files are
written atomically and read with safetensors (no pickle).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Optional

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file
from safetensors.numpy import save as safetensors_bytes
from tqdm.auto import tqdm

from paddle_tag.data.sequences import InteractionData
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.pretrained import resolve_pretrained
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_json, read_json, sha256_file

PASSAGE_PREFIX = "passage: "  # e5: titles are the passages a user's query is matched against
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def items_digest(data: InteractionData) -> str:
    """SHA-256 of the item ids in order, with their titles (a changed title changes its vector)."""
    return hashlib.sha256(json.dumps([data.item_ids, data.titles], ensure_ascii=False).encode()).hexdigest()


def model_digest(model_name: str) -> str:
    """SHA-256 over the files of the text encoder's directory that decide a vector (weights, config, tokenizer)."""
    try:
        directory = Path(resolve_pretrained(model_name) or "")
    except ModelLoadError as exc:
        raise ModelLoadError(f"title vectors (Recommend.title_model): {model_name} is not a local model directory "
                             f"({exc})") from None
    present = [name for name in MODEL_FILES if (directory / name).is_file()]
    if not directory.is_dir() or "model.safetensors" not in present:
        raise ModelLoadError(f"title vectors (Recommend.title_model): {model_name} is not a local model directory "
                             f"with model.safetensors")
    return hashlib.sha256("|".join(f"{n}:{sha256_file(directory / n)}" for n in present).encode()).hexdigest()


def embed_titles(data: InteractionData, embedder: Embedder, progress: bool = True) -> np.ndarray:
    """``(N + 1, D)`` float32 title vectors; rows without a title (and the padding row) stay 0."""
    rows = [i for i, title in enumerate(data.titles) if i > 0 and title.strip()]
    dim = int(embedder.encoder.config.hidden_size)
    vectors = np.zeros((len(data.item_ids), dim), dtype=np.float32)
    if rows:
        vectors[rows] = embedder.embed([data.titles[i] for i in rows], progress=progress, desc="title vectors")
    return vectors


def title_vectors(data: InteractionData, model_name: str, cache_dir: Optional[Path],
                  prefix: str = PASSAGE_PREFIX, progress: bool = True) -> np.ndarray:
    """The titles' vectors from ``cache_dir`` when a matching file is there, else embedded (and cached there)."""
    expected = {"model": model_name, "model_sha256": model_digest(model_name), "prefix": prefix,
                "items_sha256": items_digest(data), "rows": len(data.item_ids)}
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model_name).name) or "model"
        path = Path(cache_dir) / f"{slug}-{key}.safetensors"
        cached = _read(path, expected)
        if cached is not None:
            tqdm.write(f"[titles] {cached.shape[0] - 1} title vectors from {path}")
            return cached
    started = time.perf_counter()
    embedder = Embedder.from_pretrained(model_name, prefix=prefix)
    vectors = embed_titles(data, embedder, progress)
    if path is not None:
        blob = safetensors_bytes({"vectors": vectors})
        atomic_write_bytes(path, blob)
        atomic_write_json(path.with_suffix(".json"), {
            **expected, "dim": int(vectors.shape[1]), "vectors_sha256": hashlib.sha256(blob).hexdigest(),
            "seconds": round(time.perf_counter() - started, 2)})
    return vectors


def _read(path: Path, expected: dict) -> Optional[np.ndarray]:
    """The cached vectors, or None (with the reason written out) when the file is absent or does not match."""
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        return None
    reason = None
    try:
        saved = read_json(sidecar) if sidecar.is_file() else None
    except ValueError:
        saved = None
    if saved is None:
        reason = f"no readable sidecar {sidecar.name}"
    elif any(saved.get(k) != v for k, v in expected.items()):
        differ = [k for k, v in expected.items() if saved.get(k) != v]
        reason = f"it was made for another {' / '.join(differ)}"
    elif sha256_file(path) != saved.get("vectors_sha256"):
        reason = "the file was changed after it was written (SHA-256 differs)"
    else:
        try:
            vectors = load_file(str(path)).get("vectors")
        except (OSError, SafetensorError) as exc:
            vectors, reason = None, f"unreadable ({exc})"
        if vectors is not None and vectors.dtype == np.float32 and vectors.shape == (expected["rows"], saved["dim"]):
            return vectors
        reason = reason or f"its vectors have shape {None if vectors is None else vectors.shape}"
    tqdm.write(f"[titles] not using {path}: {reason}; embedding the titles again")
    return None
