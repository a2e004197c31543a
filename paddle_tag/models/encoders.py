"""Text encoders from PaddleNLP: built from a size config (random init) or loaded with ``from_pretrained``.

Two families, both ``(sequence_output, pooled_output) = encoder(input_ids, attention_mask=...)``:

- ``ernie``: PaddleNLP ``ErnieModel`` (ERNIE 3.0 and the random-init small models);
- ``bert``: PaddleNLP ``BertModel`` — also the layout of multilingual-e5-small once imported with
  ``tools/convert_weights.py`` (positions from 0, so not PaddleNLP's ``RobertaModel``).

``Model.pretrained`` is a local ``save_pretrained`` directory, the name of a model converted into the
local models cache (see :mod:`paddle_tag.models.pretrained`), or a PaddleNLP hub name (needs a network).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import paddle

from paddle_tag.config.schema import ModelConfig
from paddle_tag.errors import ModelLoadError
from paddle_tag.utils.io import read_json
from paddle_tag.utils.quiet import quiet_paddlenlp
from paddle_tag.utils.safe_load import require_safetensors_dir

# Model.name → (PaddleNLP config class, model class, model_type values its config.json may carry)
ENCODERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ernie": ("ErnieConfig", "ErnieModel", ("ernie",)),
    "bert": ("BertConfig", "BertModel", ("bert",)),
}


def _classes(name: str) -> tuple[type, type]:
    if name not in ENCODERS:
        raise ModelLoadError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    quiet_paddlenlp()
    import paddlenlp.transformers as transformers

    config_cls, model_cls, _ = ENCODERS[name]
    return getattr(transformers, config_cls), getattr(transformers, model_cls)


def encoder_from_sizes(name: str, cfg: ModelConfig, vocab_size: int, pad_token_id: int) -> paddle.nn.Layer:
    """A randomly initialised encoder of the size given by the ``Model.*`` keys."""
    config_cls, model_cls = _classes(name)
    if cfg.hidden_size % cfg.num_heads:
        raise ModelLoadError(f"Model.hidden_size={cfg.hidden_size} must be divisible by Model.num_heads={cfg.num_heads}")
    config = config_cls(vocab_size=vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                        max_position_embeddings=cfg.max_position, type_vocab_size=4 if name == "ernie" else 2,
                        pad_token_id=pad_token_id)
    return model_cls(config)


def check_family(name: str, directory: str | Path) -> None:
    """Refuse a model directory whose ``config.json`` is of another family than ``Model.name``."""
    config_path = Path(directory) / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{directory}: no config.json in this model directory")
    saved = read_json(config_path)
    kind = str(saved.get("model_type") or "".join(saved.get("architectures") or [])).lower()
    for family, (_, model_cls, types) in ENCODERS.items():
        if kind in types or model_cls.lower() in kind:
            if family != name:
                raise ModelLoadError(f"{directory} holds a {model_cls} ({family}); set Model.name={family}")
            return


def encoder_from_pretrained(name: str, name_or_dir: str) -> paddle.nn.Layer:
    """Weights from a local ``save_pretrained`` directory or a PaddleNLP model name (needs a network).

    Only safetensors weights are read (``use_safetensors=True``): a directory or hub model that has only
    ``model_state.pdparams`` is refused, since unpickling it would run any code it holds."""
    _, model_cls = _classes(name)
    local = Path(name_or_dir)
    if local.exists() and not local.is_dir():
        raise ModelLoadError(f"Model.pretrained={name_or_dir} is a file; pass the model directory")
    if local.is_dir():
        check_family(name, local)
        require_safetensors_dir(local)
    try:
        return model_cls.from_pretrained(name_or_dir, use_safetensors=True, convert_from_torch=False)
    except Exception as exc:  # paddlenlp raises OSError/ValueError/HTTP errors by case
        if local.is_dir():
            raise ModelLoadError(f"cannot load {model_cls.__name__} weights from {name_or_dir}: {exc}") from None
        raise ModelLoadError(
            f"cannot load {name_or_dir!r}: it is not a local directory and downloading it failed "
            f"({type(exc).__name__}; only safetensors weights are downloaded). Offline, pass "
            "Model.pretrained=<a local model directory> (config.json + weights + tokenizer), convert one with "
            "tools/convert_weights.py, or set Model.pretrained=null to train from random init.") from None


def encoder_from_dict(name: str, encoder_config: dict[str, Any]) -> paddle.nn.Layer:
    """Rebuild an encoder skeleton from a saved config (weights are loaded separately)."""
    config_cls, model_cls = _classes(name)
    return model_cls(config_cls(**encoder_config))


def build_encoder(cfg: ModelConfig, vocab_size: int, pad_token_id: int) -> paddle.nn.Layer:
    """The encoder named by ``Model.name``: pretrained if ``Model.pretrained`` is set, else random init."""
    if cfg.pretrained:
        return encoder_from_pretrained(cfg.name, cfg.pretrained)
    return encoder_from_sizes(cfg.name, cfg, vocab_size, pad_token_id)


def encoder_config_dict(encoder: paddle.nn.Layer) -> dict[str, Any]:
    """The JSON-serialisable config of a PaddleNLP encoder."""
    return {k: v for k, v in encoder.config.to_dict().items() if not k.startswith("_")}
