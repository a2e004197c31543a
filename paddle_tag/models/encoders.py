"""Text encoders from PaddleNLP: built from a size config (random init) or loaded with ``from_pretrained``.

Each builder returns a ``paddle.nn.Layer`` whose ``forward(input_ids, attention_mask=...)`` gives
``(sequence_output, pooled_output)`` and which has a ``config`` with ``hidden_size`` and a ``to_dict``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import paddle

from paddle_tag.config.schema import ModelConfig
from paddle_tag.errors import ModelLoadError
from paddle_tag.utils.quiet import quiet_paddlenlp


def ernie_from_config(cfg: ModelConfig, vocab_size: int, pad_token_id: int) -> paddle.nn.Layer:
    """A randomly initialised ERNIE of the size given by the ``Model.*`` keys."""
    quiet_paddlenlp()
    from paddlenlp.transformers import ErnieConfig, ErnieModel

    if cfg.hidden_size % cfg.num_heads:
        raise ModelLoadError(f"Model.hidden_size={cfg.hidden_size} must be divisible by Model.num_heads={cfg.num_heads}")
    config = ErnieConfig(vocab_size=vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                         num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                         hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                         max_position_embeddings=cfg.max_position, type_vocab_size=4, pad_token_id=pad_token_id)
    return ErnieModel(config)


def ernie_from_pretrained(name_or_dir: str) -> paddle.nn.Layer:
    """ERNIE weights from a local ``save_pretrained`` directory or a PaddleNLP model name (needs a network)."""
    quiet_paddlenlp()
    from paddlenlp.transformers import ErnieModel

    local = Path(name_or_dir)
    if local.exists() and not local.is_dir():
        raise ModelLoadError(f"Model.pretrained={name_or_dir} is a file; pass the model directory")
    try:
        return ErnieModel.from_pretrained(name_or_dir)
    except Exception as exc:  # paddlenlp raises OSError/ValueError/HTTP errors by case
        if local.is_dir():
            raise ModelLoadError(f"cannot load ERNIE weights from {name_or_dir}: {exc}") from None
        raise ModelLoadError(
            f"cannot load {name_or_dir!r}: it is not a local directory and downloading it failed "
            f"({type(exc).__name__}). Offline, pass Model.pretrained=<a local model directory> "
            "(config.json + weights + vocab.txt), or Model.pretrained=null to train from random init.") from None


def ernie_from_dict(encoder_config: dict[str, Any]) -> paddle.nn.Layer:
    """Rebuild an ERNIE skeleton from a saved config (weights are loaded separately)."""
    quiet_paddlenlp()
    from paddlenlp.transformers import ErnieConfig, ErnieModel

    return ErnieModel(ErnieConfig(**encoder_config))


# name → (build from Model.* sizes, load pretrained, rebuild from a checkpoint's saved config)
ENCODERS: dict[str, tuple[Callable, Callable, Callable]] = {
    "ernie": (ernie_from_config, ernie_from_pretrained, ernie_from_dict),
}


def build_encoder(cfg: ModelConfig, vocab_size: int, pad_token_id: int) -> paddle.nn.Layer:
    """The encoder named by ``Model.name``: pretrained if ``Model.pretrained`` is set, else random init."""
    from_config, from_pretrained, _ = ENCODERS[cfg.name]
    if cfg.pretrained:
        return from_pretrained(cfg.pretrained)
    return from_config(cfg, vocab_size, pad_token_id)


def encoder_from_dict(name: str, encoder_config: dict[str, Any]) -> paddle.nn.Layer:
    if name not in ENCODERS:
        raise ModelLoadError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[name][2](encoder_config)


def encoder_config_dict(encoder: paddle.nn.Layer) -> dict[str, Any]:
    """The JSON-serialisable config of a PaddleNLP encoder."""
    return {k: v for k, v in encoder.config.to_dict().items() if not k.startswith("_")}

