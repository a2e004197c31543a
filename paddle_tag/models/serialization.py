"""Save and load a :class:`Tagger` as ``model.safetensors`` + ``model_config.json`` (no pickle anywhere).

An image tagger (:class:`paddle_tag.models.image.ImageTagger`) uses the same two files; its
``model_config.json`` says ``"modality": "image"`` and names the backbone (a text one has no ``modality``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from safetensors.numpy import load_file, save_file

from paddle_tag.errors import ModelLoadError
from paddle_tag.models.encoders import encoder_config_dict, encoder_from_dict
from paddle_tag.models.image import ImageTagger
from paddle_tag.models.tagger import Tagger
from paddle_tag.models.wide import HashedNgrams
from paddle_tag.utils.io import atomic_write_json, read_json

WEIGHTS_FILE = "model.safetensors"
MODEL_CONFIG_FILE = "model_config.json"


def state_to_numpy(layer: paddle.nn.Layer) -> dict[str, np.ndarray]:
    """Weights as float32 numpy arrays (AMP O2 keeps fp16/bf16 parameters; checkpoints stay fp32)."""
    low = (paddle.float16, paddle.bfloat16)
    return {name: np.ascontiguousarray((t.astype("float32") if t.dtype in low else t).numpy())
            for name, t in layer.state_dict().items()}


def save_tagger(tagger: Tagger, encoder_name: str, directory: str | os.PathLike) -> None:
    """Write weights and the config needed to rebuild ``tagger`` into ``directory`` (which must exist)."""
    directory = Path(directory)
    if getattr(tagger, "modality", "text") == "image":
        _write(tagger, tagger.model_config(), directory)
        return
    meta = {"encoder": encoder_name, "encoder_config": encoder_config_dict(tagger.encoder),
            "num_labels": tagger.num_labels, "pad_id": tagger.pad_id, "pooling": tagger.pooling,
            "head_dropout": float(tagger.dropout.p), "window_pooling": tagger.window_pooling,
            "wide": tagger.wide.config() if tagger.wide is not None else None}
    _write(tagger, meta, directory)


def _write(tagger: paddle.nn.Layer, meta: dict[str, Any], directory: Path) -> None:
    atomic_write_json(directory / MODEL_CONFIG_FILE, meta)
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(state_to_numpy(tagger), str(tmp))
    os.replace(tmp, directory / WEIGHTS_FILE)


def load_tagger(directory: str | os.PathLike) -> tuple[Tagger, dict[str, Any]]:
    """Rebuild the tagger saved in ``directory``; returns it (in eval mode) and its saved model config."""
    directory = Path(directory)
    for name in (MODEL_CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ModelLoadError(f"{directory} is not a paddle_tag checkpoint: {name} is missing")
    meta = read_json(directory / MODEL_CONFIG_FILE)
    with paddle.utils.unique_name.guard():
        if meta.get("modality") == "image":

            tagger = ImageTagger.from_model_config(meta)
        else:
            encoder = encoder_from_dict(meta["encoder"], meta["encoder_config"])
            # checkpoints from before windows and the wide part have neither key: one window, no wide part
            wide = meta.get("wide")
            wide = HashedNgrams(meta["num_labels"], wide["ngram_max"], wide["buckets"], wide.get("idf", False)) \
                if wide else None
            tagger = Tagger(encoder, meta["num_labels"], meta["pad_id"], meta["pooling"], meta["head_dropout"],
                            meta.get("window_pooling", "max"), wide)
    load_weights(tagger, directory / WEIGHTS_FILE)
    tagger.eval()
    return tagger, meta


def load_weights(layer: paddle.nn.Layer, path: str | os.PathLike) -> None:
    """Load a safetensors state dict, refusing missing, unexpected or mis-shaped tensors."""
    if not Path(path).is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    try:
        arrays = load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError / OSError for corrupt or truncated files
        raise ModelLoadError(f"{path}: cannot read the weights ({exc})") from None
    expected = layer.state_dict()
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise ModelLoadError(f"{path}: weights do not match the model (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
    for name, tensor in expected.items():
        if tuple(tensor.shape) != arrays[name].shape:
            raise ModelLoadError(f"{path}: {name} has shape {arrays[name].shape}, the model wants {tuple(tensor.shape)}")
    layer.set_state_dict({name: paddle.to_tensor(value) for name, value in arrays.items()})
