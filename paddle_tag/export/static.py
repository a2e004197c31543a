"""Save the tagger as a Paddle static graph (PIR ``model.json`` + ``model.pdiparams``).

Paddle 3 writes the PIR JSON program; paddle2onnx reads it. (The legacy program format,
``FLAGS_enable_pir_api=0``, fails on ERNIE and is not used.)
"""
from __future__ import annotations

import os
from pathlib import Path

import paddle

from paddle_tag.errors import ExportError
from paddle_tag.models import Tagger

INPUT_NAME = "input_ids"
MODEL_FILE = "model.json"
PARAMS_FILE = "model.pdiparams"


def save_static(model: Tagger, directory: str | os.PathLike) -> tuple[Path, Path]:
    """``paddle.jit.save`` of ``model`` in eval mode with a dynamic ``[batch, sequence]`` int64 input.

    Returns the paths of ``model.json`` and ``model.pdiparams`` in ``directory`` (created if needed).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    spec = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=INPUT_NAME)]
    try:
        paddle.jit.save(model, str(directory / "model"), input_spec=spec)
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
