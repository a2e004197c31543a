"""Save a model as a Paddle static graph (PIR ``model.json`` + ``model.pdiparams``): a tagger, or any layer
with its own input specs (the recommender's user encoder).

Paddle 3 writes the PIR JSON program; paddle2onnx reads it. (The legacy program format,
``FLAGS_enable_pir_api=0``, fails on ERNIE and is not used.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import paddle

from paddle_tag.errors import ExportError
from paddle_tag.models import Tagger

MODEL_FILE = "model.json"
PARAMS_FILE = "model.pdiparams"


def input_specs(model: Tagger, windowed: bool = False) -> list[paddle.static.InputSpec]:
    """The exported inputs, every dimension dynamic: ``input_ids`` int64 ``[batch, sequence]`` (or
    ``[batch, windows, sequence]`` when a text is read as windows), plus ``char_ids`` int64 ``[batch, chars]``
    for a tagger with a wide part."""
    specs = [paddle.static.InputSpec(shape=[None, None, None] if windowed else [None, None], dtype="int64",
                                     name="input_ids")]
    if model.wide is not None:
        specs.append(paddle.static.InputSpec(shape=[None, None], dtype="int64", name="char_ids"))
    return specs


def save_static(model: paddle.nn.Layer, directory: str | os.PathLike, windowed: bool = False,
                specs: Optional[list[paddle.static.InputSpec]] = None) -> tuple[Path, Path]:
    """``paddle.jit.save`` of ``model`` in eval mode with ``specs`` (default: a tagger's :func:`input_specs`).

    Returns the paths of ``model.json`` and ``model.pdiparams`` in ``directory`` (created if needed).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        paddle.jit.save(model, str(directory / "model"), input_spec=specs or input_specs(model, windowed))
    except Exception as exc:  # paddle raises many types from its program translator
        raise ExportError(f"paddle.jit.save failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if was_training:
            model.train()
    model_json, params = directory / MODEL_FILE, directory / PARAMS_FILE
    for path in (model_json, params):
        if not path.is_file():
            raise ExportError(f"paddle.jit.save did not write {path} (is the PIR API disabled? "
                              "FLAGS_enable_pir_api must stay on)")
    return model_json, params
