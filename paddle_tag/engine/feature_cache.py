"""Frozen-encoder features: every window of a dataset embedded once and cached on disk (``Model.freeze_encoder``).

With a frozen encoder a window's pooled feature never changes, so training needs the encoder once per window,
not once per window per epoch: :func:`window_features` runs it over the dataset's windows (batched by length,
with a progress bar), and the trainer then feeds ``window_features`` to the window pooling, the wide part and
the head. A 12-layer encoder that costs ~30 min per epoch on 2 CPU cores costs one pass.

The cache file ``<cache_dir>/<key>.safetensors`` holds ``features`` ``(W, H)`` float32 and ``offsets``
``(N + 1,)`` int64 (text ``i`` owns rows ``offsets[i]:offsets[i+1]``). ``key`` hashes the encoder's weights and
pooling and every window's token ids (which carry the tokenizer, the text prefix and the windowing), so a changed
model, tokenizer, window setting or text misses the cache. Files are written atomically and read with
safetensors (no pickle); a file whose shapes do not match the dataset is ignored and recomputed.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np
import paddle
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from paddle_tag.data.dataset import TaggingDataset, WindowFeatures
from paddle_tag.data.tokenizer import pad_batch
from paddle_tag.models.tagger import Tagger, encode_pooled

CACHE_ENV = "PADDLE_TAG_FEATURES"


def feature_cache_dir(configured: Optional[str] = None) -> Path:
    """``Model.feature_cache``, else ``$PADDLE_TAG_FEATURES``, else ``~/.cache/paddle_tag/features``."""
    chosen = configured or os.environ.get(CACHE_ENV)
    return Path(chosen).expanduser() if chosen else Path.home() / ".cache" / "paddle_tag" / "features"


def cache_key(model: Tagger, dataset: TaggingDataset) -> str:
    """SHA-256 over the encoder (weights, pooling, pad id) and every window's token ids."""
    digest = hashlib.sha256(f"{model.pooling}|{model.pad_id}|".encode())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.numpy()).tobytes())
    for windows in dataset.encoded.windows:
        digest.update(len(windows).to_bytes(4, "little"))
        for window in windows:
            digest.update(np.asarray(window, dtype="int64").tobytes() + b"|")
    return digest.hexdigest()[:32]


def _offsets(dataset: TaggingDataset) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(dataset.window_counts)]).astype("int64")


def _read(path: Path, offsets: np.ndarray, hidden: int) -> Optional[WindowFeatures]:
    try:
        arrays = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        tqdm.write(f"[features] ignoring the unreadable cache file {path} ({exc}); embedding again")
        return None
    features, saved = arrays.get("features"), arrays.get("offsets")
    if (features is None or saved is None or features.dtype != np.float32
            or features.shape != (int(offsets[-1]), hidden) or not np.array_equal(saved, offsets)):
        tqdm.write(f"[features] {path} does not match this dataset; embedding again")
        return None
    return WindowFeatures(features, offsets)


@paddle.no_grad()
def embed_windows(model: Tagger, dataset: TaggingDataset, batch_size: int = 64, progress: bool = False,
                  desc: str = "embed") -> np.ndarray:
    """Pooled encoder features ``(W, H)`` of every window of ``dataset``, in dataset order."""
    rows = [window for windows in dataset.encoded.windows for window in windows]
    order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths share a batch
    hidden = int(model.encoder.config.hidden_size)
    out = np.zeros((len(rows), hidden), dtype="float32")
    was_training = model.training
    model.eval()
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, dynamic_ncols=True, unit="batch", leave=False):
        chosen = order[start:start + batch_size]
        batch = paddle.to_tensor(pad_batch([rows[i] for i in chosen], model.pad_id))
        out[chosen] = encode_pooled(model.encoder, batch, model.pad_id, model.pooling).astype("float32").numpy()
    if was_training:
        model.train()
    return out


def window_features(model: Tagger, dataset: TaggingDataset, cache_dir: Optional[Path], batch_size: int = 64,
                    progress: bool = False, desc: str = "embed") -> WindowFeatures:
    """The dataset's window features from ``cache_dir`` when there, else embedded (and cached)."""
    offsets = _offsets(dataset)
    hidden = int(model.encoder.config.hidden_size)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(model, dataset)}.safetensors"
        if path.is_file():
            cached = _read(path, offsets, hidden)
            if cached is not None:
                tqdm.write(f"[features] {desc}: {len(dataset)} texts, {int(offsets[-1])} windows from {path}")
                return cached
    features = embed_windows(model, dataset, batch_size, progress, desc)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"features": features, "offsets": offsets}, str(tmp))
        os.replace(tmp, path)
    return WindowFeatures(features, offsets)
