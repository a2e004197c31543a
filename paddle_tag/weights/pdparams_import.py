"""Convert a trusted pickle-based Paddle weights file (``.pdparams``) to safetensors, once, on purpose.

paddle_tag never unpickles a file on its own (:mod:`paddle_tag.utils.safe_load`): ``paddle.load`` runs any code
the file holds. This is the one door, behind ``--trust-pickle``:

- a file (a PaddleClas backbone's ``.pdparams``) → one ``.safetensors`` file;
- a PaddleNLP ``save_pretrained`` directory with ``model_state.pdparams`` → a copy of the directory with
  ``model.safetensors`` in its place (config and tokenizer files copied, every pickle file left out).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import paddle
from safetensors.numpy import save_file

from paddle_tag.errors import ModelLoadError
from paddle_tag.utils.io import atomic_write_bytes, replace_directory
from paddle_tag.utils.safe_load import is_pickle_file

PADDLE_WEIGHTS = "model_state.pdparams"


def convert_pdparams(src: str | os.PathLike, out: str | os.PathLike, trust_pickle: bool = False) -> Path:
    """Unpickle ``src`` (only with ``trust_pickle``) and write its tensors as safetensors to ``out``."""
    src, out = Path(src), Path(out)
    if not trust_pickle:
        raise ModelLoadError(f"{src}: converting a pickle file runs any code it holds; pass --trust-pickle only "
                             f"for a file from a source you trust")
    if src.is_dir():
        return _convert_directory(src, out)
    if not src.is_file():
        raise ModelLoadError(f"{src}: no such file or directory")
    if out.suffix != ".safetensors":
        raise ModelLoadError(f"{out}: the output of a file conversion is a .safetensors file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(_trusted_state(src), str(tmp))
    atomic_write_bytes(out, tmp.read_bytes())
    tmp.unlink()
    return out


def _convert_directory(src: Path, out: Path) -> Path:
    weights = src / PADDLE_WEIGHTS
    if not weights.is_file():
        raise ModelLoadError(f"{src}: no {PADDLE_WEIGHTS} to convert")
    if not (src / "config.json").is_file():
        raise ModelLoadError(f"{src}: no config.json; not a PaddleNLP model directory")
    if out.resolve() == src.resolve():
        raise ModelLoadError(f"{out}: write the converted model to a new directory, not over its source")
    state = _trusted_state(weights)
    with replace_directory(out) as tmp:
        for path in src.iterdir():
            if path.is_file() and not is_pickle_file(path):
                shutil.copyfile(path, tmp / path.name)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "np"})  # what PaddleNLP writes and reads
    return out


def _trusted_state(path: Path) -> dict[str, np.ndarray]:
    try:  # the one unpickling in paddle_tag: the caller passed trust_pickle
        state = paddle.load(str(path), return_numpy=True)
    except Exception as exc:  # noqa: BLE001 (paddle raises many kinds for a bad file)
        raise ModelLoadError(f"{path}: cannot read as Paddle weights: {exc}") from None
    if not isinstance(state, dict) or not state:
        raise ModelLoadError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise ModelLoadError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        arrays[name] = np.ascontiguousarray(value)
    return arrays
