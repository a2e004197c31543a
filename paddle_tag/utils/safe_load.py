"""Refuse pickle-based weight files before anything opens them.

Unpickling runs whatever code the file holds (``paddle.load`` of a ``.pdparams``, PaddleNLP's
``from_pretrained`` of a ``model_state.pdparams``, ``torch.load``), so paddle_tag reads weights from
safetensors only. A pickle file the user trusts is converted once, on purpose, with
``tools/convert_weights.py pdparams SRC OUT --trust-pickle``.
"""
from __future__ import annotations

import os
from pathlib import Path

from paddle_tag.errors import ModelLoadError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".pdparams", ".pdopt", ".pdmodel.pkl")
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def convert_command(src: str | os.PathLike, out: str) -> str:
    """The command that converts a trusted pickle weights file or directory to safetensors."""
    return f"python tools/convert_weights.py pdparams {src} {out} --trust-pickle"


def is_pickle_file(path: str | os.PathLike) -> bool:
    return Path(path).name.lower().endswith(PICKLE_SUFFIXES)


def refuse_pickle_file(path: str | os.PathLike, what: str = "weights") -> None:
    """Raise :class:`ModelLoadError` for a pickle-based file, naming the conversion command."""
    path = Path(path)
    if is_pickle_file(path):
        raise ModelLoadError(
            f"{path}: {what} in a pickle-based format are not loaded (opening one runs any code it holds). "
            f"If you trust its source, convert it once: {convert_command(path, path.with_suffix('.safetensors'))}")


def require_safetensors_dir(directory: str | os.PathLike) -> None:
    """A model directory must hold ``model.safetensors`` (or a sharded index); pickle-only ones are refused."""
    directory = Path(directory)
    if any((directory / name).is_file() for name in SAFETENSORS_WEIGHTS):
        return
    pickles = sorted(p.name for p in directory.iterdir() if p.is_file() and is_pickle_file(p))
    if pickles:
        raise ModelLoadError(
            f"{directory} holds only pickle-based weights ({', '.join(pickles)}), which are not loaded (opening "
            f"them runs any code they hold). If you trust their source, convert them once: "
            f"{convert_command(directory, str(directory) + '-safetensors')}")
    raise ModelLoadError(f"{directory}: no model.safetensors in this model directory")
