"""Import Hugging Face BERT / ERNIE checkpoints (safetensors only) as PaddleNLP ``save_pretrained`` folders.

The path is: ``config.json`` → :func:`paddle_config` (``BertConfig`` / ``ErnieConfig`` kwargs, refusing
layouts PaddleNLP's ``BertModel`` / ``ErnieModel`` would compute differently), ``model.safetensors``
(or shards) read with ``safetensors.numpy`` → :func:`paddle_state_dict` (renamed, linear weights
transposed from torch's ``[out, in]`` to Paddle's ``[in, out]``, task heads dropped) →
:func:`save_model_dir` (strict name / shape check, ``save_pretrained(safe_serialization=True)``,
``tokenizer.json``, ``provenance.json``, all swapped in atomically). Nothing is ever unpickled: a
folder with only ``pytorch_model.bin`` / ``*.pt`` is refused.

Notes on PaddleNLP 2.8.1: ``ErnieModel`` fixes every LayerNorm epsilon at 1e-12 whatever its config
says (``BertModel`` honours ``layer_norm_eps``), so an ERNIE checkpoint with another epsilon is refused;
PaddleNLP's ``ErnieModel`` has no ``_get_name_mappings`` (``BertModel`` has, and agrees with ours).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import paddle_tag
from paddle_tag.data.wordpiece import SPECIAL_TOKENS, build_tokenizer
from paddle_tag.errors import ModelLoadError
from paddle_tag.utils.io import read_json, replace_directory, sha256_file
from paddle_tag.utils.safe_load import is_pickle_file

log = logging.getLogger(__name__)

MODEL_TYPES = ("bert", "ernie")
BASE_PREFIXES = ("bert.", "ernie.")  # base_model_prefix of task models (BertForMaskedLM, ...)
HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.")  # task heads: dropped, reported
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # torch buffers, not weights
# Hugging Face name outside the layers → (PaddleNLP name, transpose)
TOP_NAMES = {
    "embeddings.word_embeddings.weight": ("embeddings.word_embeddings.weight", False),
    "embeddings.position_embeddings.weight": ("embeddings.position_embeddings.weight", False),
    "embeddings.token_type_embeddings.weight": ("embeddings.token_type_embeddings.weight", False),
    "embeddings.LayerNorm.weight": ("embeddings.layer_norm.weight", False),
    "embeddings.LayerNorm.bias": ("embeddings.layer_norm.bias", False),
    "pooler.dense.weight": ("pooler.dense.weight", True),
    "pooler.dense.bias": ("pooler.dense.bias", False),
}
ERNIE_NAMES = {"embeddings.task_type_embeddings.weight": ("embeddings.task_type_embeddings.weight", False)}
# per layer: Hugging Face module → PaddleNLP (nn.TransformerEncoderLayer) module
LAYER_MODULES = {
    "attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1", "intermediate.dense": "linear1", "output.dense": "linear2",
    "output.LayerNorm": "norm2",
}
HF_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)")
PD_LAYER = re.compile(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")
# model types whose checkpoints look like BERT but compute differently
REFUSED_TYPES = {
    **dict.fromkeys(("roberta", "xlm-roberta", "camembert"), "position ids start at padding_idx + 1 (offset 2), "
                    "which PaddleNLP's BertModel / ErnieModel do not do"),
    "ernie-m": "ERNIE-M is another architecture (no token types, offset positions)",
}
HF_ACTIVATIONS = ("gelu", "relu")  # same function under the same name in torch and Paddle


def _check_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        raise ModelLoadError(f"model_type {model_type!r} is not supported (supported: {', '.join(MODEL_TYPES)})")


def _rename(name: str, model_type: str, to_paddle: bool = True) -> tuple[str, bool] | None:
    """The PaddleNLP name of a base-model Hugging Face name (or the reverse) and whether the tensor is transposed."""
    top, modules = {**TOP_NAMES, **(ERNIE_NAMES if model_type == "ernie" else {})}, LAYER_MODULES
    if to_paddle:  # LayerNorm gamma / beta: names of checkpoints converted from TensorFlow
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
    else:
        top, modules = {pd: (hf, t) for hf, (pd, t) in top.items()}, {pd: hf for hf, pd in modules.items()}
    match = (HF_LAYER if to_paddle else PD_LAYER).fullmatch(name)
    if match and match[2] in modules:
        layers = "layers" if to_paddle else "layer"
        renamed = f"encoder.{layers}.{match[1]}.{modules[match[2]]}.{match[3]}"
        return renamed, match[3] == "weight" and "norm" not in match[2].lower()  # linear weights only
    return top.get(name)


def _as_float32(name: str, value: Any, transpose: bool) -> np.ndarray:
    array = np.asarray(value).astype(np.float32)  # bf16 (ml_dtypes) / fp16 / fp32 → fp32
    if transpose:
        if array.ndim != 2:
            raise ModelLoadError(f"tensor {name!r} is a linear weight but has shape {list(array.shape)}, not 2-D")
        array = array.T
    return np.ascontiguousarray(array)


def paddle_state_dict(hf_state: Mapping[str, np.ndarray], model_type: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Hugging Face BERT / ERNIE tensors → (PaddleNLP ``BertModel`` / ``ErnieModel`` float32 tensors, dropped names).

    ``bert.`` / ``ernie.`` prefixes of task models are stripped; task heads (``cls.*``, ``classifier.*``,
    ``qa_outputs.*``) and the ``position_ids`` buffer are dropped and returned; any other unknown name
    is an error.
    """
    _check_type(model_type)
    out: dict[str, np.ndarray] = {}
    dropped, unknown = [], []
    for name, value in hf_state.items():
        short = name[len(name.split(".", 1)[0]) + 1:] if name.startswith(BASE_PREFIXES) else name
        if short.startswith(HEAD_PREFIXES) or short in BUFFERS:
            dropped.append(name)
            continue
        target = _rename(short, model_type)
        if target is None:
            unknown.append(name)
            continue
        if target[0] in out:
            raise ModelLoadError(f"tensor {target[0]!r} occurs twice in the checkpoint (with and without prefix)")
        out[target[0]] = _as_float32(name, value, target[1])
    if unknown:
        raise ModelLoadError(f"{len(unknown)} tensor(s) are not part of a Hugging Face {model_type} model "
                             f"nor a known task head: {sorted(unknown)[:20]}")
    return out, sorted(dropped)


def hf_state_dict(paddle_state: Mapping[str, np.ndarray], model_type: str) -> dict[str, np.ndarray]:
    """PaddleNLP ``BertModel`` / ``ErnieModel`` tensors → Hugging Face base-model names (``[out, in]`` linears)."""
    _check_type(model_type)
    targets = {name: _rename(name, model_type, to_paddle=False) for name in paddle_state}
    unknown = sorted(name for name, target in targets.items() if target is None)
    if unknown:
        raise ModelLoadError(f"{len(unknown)} tensor(s) are not part of a PaddleNLP {model_type} model: {unknown[:20]}")
    return {targets[name][0]: _as_float32(name, value, targets[name][1]) for name, value in paddle_state.items()}


def _model_type(hf_config: Mapping[str, Any]) -> str:
    model_type = str(hf_config.get("model_type") or "").lower().replace("_", "-")
    if not model_type:  # old configs: only the architecture names
        for arch in hf_config.get("architectures") or []:
            match = re.fullmatch(r"(Bert|Ernie)(Model|For\w+|LMHeadModel)", str(arch))
            if match:
                return match[1].lower()
        raise ModelLoadError(f"config.json has no model_type and no BERT / ERNIE architecture "
                             f"(architectures: {hf_config.get('architectures')})")
    if model_type in REFUSED_TYPES:
        raise ModelLoadError(f"model_type {model_type!r} is not supported: {REFUSED_TYPES[model_type]}")
    _check_type(model_type)
    return model_type


def paddle_config(hf_config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Model type (``"bert"`` / ``"ernie"``) and ``BertConfig`` / ``ErnieConfig`` kwargs of an HF ``config.json``."""
    model_type = _model_type(hf_config)
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [key for key in required if key not in hf_config]
    if missing:
        raise ModelLoadError(f"config.json lacks {missing}")
    get = hf_config.get
    if get("position_embedding_type", "absolute") != "absolute":
        raise ModelLoadError(f"position_embedding_type {get('position_embedding_type')!r} is not supported "
                             "(PaddleNLP's models use absolute positions)")
    if get("is_decoder") or get("add_cross_attention"):
        raise ModelLoadError("decoder / cross-attention BERT configs are not supported")
    act = get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise ModelLoadError(f"hidden_act {act!r} is not supported (supported: {', '.join(HF_ACTIVATIONS)})")
    eps = float(get("layer_norm_eps", 1e-12))
    if model_type == "ernie" and not math.isclose(eps, 1e-12, rel_tol=1e-6):
        raise ModelLoadError(f"layer_norm_eps {eps} cannot be reproduced: PaddleNLP's ErnieModel always uses 1e-12")
    kwargs: dict[str, Any] = {key: int(hf_config[key]) for key in required}
    kwargs.update(hidden_act=act, max_position_embeddings=int(get("max_position_embeddings", 512)),
                  type_vocab_size=int(get("type_vocab_size", 2)), layer_norm_eps=eps,
                  pad_token_id=int(get("pad_token_id") or 0),
                  hidden_dropout_prob=float(get("hidden_dropout_prob", 0.1)),
                  attention_probs_dropout_prob=float(get("attention_probs_dropout_prob", 0.1)),
                  initializer_range=float(get("initializer_range", 0.02)))
    if model_type == "ernie":  # HF uses task type 0 when no task_type_ids are given; PaddleNLP uses task_id
        kwargs.update(use_task_id=bool(get("use_task_id", False)),
                      task_type_vocab_size=int(get("task_type_vocab_size", 3)), task_id=0)
    return model_type, kwargs


def _classes(model_type: str):
    from paddlenlp.transformers import BertConfig, BertModel, ErnieConfig, ErnieModel

    _check_type(model_type)
    return (BertModel, BertConfig) if model_type == "bert" else (ErnieModel, ErnieConfig)


def save_model_dir(paddle_state: Mapping[str, np.ndarray], model_type: str, config_kwargs: Mapping[str, Any],
                   out_dir: str | os.PathLike, *, tokenizer_json: Any, provenance: Mapping[str, Any],
                   allow_missing: Sequence[str] = (),
                   extra_files: Mapping[str, bytes | str | os.PathLike] | None = None) -> Path:
    """Build the PaddleNLP model, load ``paddle_state`` strictly, write the folder atomically; return it.

    ``tokenizer_json`` is a path to a ``tokenizer.json`` or a ``tokenizers.Tokenizer``; ``extra_files``
    maps more file names to bytes or a path to copy. Missing tensors whose names start with an
    ``allow_missing`` prefix are set to zeros and listed in ``provenance.json`` (``initialised_to_zero``).
    """
    import paddle

    model_cls, config_cls = _classes(model_type)
    with paddle.utils.unique_name.guard():
        model = model_cls(config_cls(**config_kwargs))
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    state = {name: np.asarray(value, dtype=np.float32) for name, value in paddle_state.items()}
    zeroed = sorted(n for n in expected if n not in state and n.startswith(tuple(allow_missing)))
    missing = sorted(set(expected) - set(state) - set(zeroed))
    unexpected = sorted(set(state) - set(expected))
    problems = [f"{name} has shape {list(value.shape)}, the model needs {list(expected[name])}"
                for name, value in state.items() if name in expected and tuple(value.shape) != expected[name]]
    problems += [f"missing: {missing}"] if missing else []
    problems += [f"not in a PaddleNLP {model_type} model: {unexpected}"] if unexpected else []
    if problems:
        raise ModelLoadError(f"the weights do not fit a PaddleNLP {model_type} model with this config: "
                             + "; ".join(problems))
    state.update({name: np.zeros(expected[name], dtype=np.float32) for name in zeroed})
    model.set_state_dict(state)
    out_dir = Path(out_dir)
    with replace_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if isinstance(tokenizer_json, (str, os.PathLike)):
            shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        else:
            tokenizer_json.save(str(tmp / "tokenizer.json"), pretty=True)
        for name, content in (extra_files or {}).items():
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                shutil.copyfile(content, tmp / name)
        pickles = sorted(p.name for p in tmp.rglob("*") if is_pickle_file(p))
        if pickles or not (tmp / "model.safetensors").is_file():
            raise ModelLoadError(f"save_pretrained wrote {sorted(p.name for p in tmp.iterdir())}: expected "
                                 f"model.safetensors and no pickle file")
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        record = {**provenance, "initialised_to_zero": zeroed, "files": files,
                  "paddle_tag_version": getattr(paddle_tag, "__version__", None)}
        (tmp / "provenance.json").write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _read_safetensors(src: Path) -> tuple[dict[str, np.ndarray], list[Path]]:
    from safetensors.numpy import load_file

    index = src / "model.safetensors.index.json"
    if (src / "model.safetensors").is_file():
        files, names = [src / "model.safetensors"], None
    elif index.is_file():
        weight_map = read_json(index).get("weight_map") or {}
        files, names = [src / f for f in sorted(set(weight_map.values()))], set(weight_map)
        absent = [f.name for f in files if not f.is_file()]
        if absent or not files:
            raise ModelLoadError(f"{index}: shard files missing: {absent or 'the index lists none'}")
    else:
        pickles = sorted(p.name for p in src.iterdir() if is_pickle_file(p))
        hint = (f"only pickle weight files ({', '.join(pickles)}); pickle files are never loaded; convert them to "
                "safetensors with transformers in a trusted, sandboxed environment "
                "(AutoModel.from_pretrained(src).save_pretrained(dst, safe_serialization=True)) or use the "
                "checkpoint's model.safetensors from the Hub") if pickles else "no model.safetensors"
        raise ModelLoadError(f"{src}: {hint}")
    state: dict[str, np.ndarray] = {}
    for path in files:
        try:
            shard = load_file(str(path))
        except Exception as err:  # SafetensorError, OSError, unknown dtype
            raise ModelLoadError(f"{path}: cannot read as safetensors: {err}") from err
        twice = set(shard) & set(state)
        if twice:
            raise ModelLoadError(f"{path}: tensors {sorted(twice)[:10]} also occur in another shard")
        state.update(shard)
    if names is not None and names != set(state):
        raise ModelLoadError(f"{index}: the shards do not hold the indexed tensors "
                             f"(missing {sorted(names - set(state))[:10]}, extra {sorted(set(state) - names)[:10]})")
    return state, files


def _tokenizer_config(src: Path, max_len: int) -> dict[str, Any]:
    """The checkpoint's ``tokenizer_config.json`` in the form PaddleNLP and :func:`build_tokenizer` read."""

    path = src / "tokenizer_config.json"
    raw = read_json(path) if path.is_file() else {}
    cls = str(raw.get("tokenizer_class") or "BertTokenizer").removesuffix("Fast")
    if cls not in ("BertTokenizer", "ErnieTokenizer"):
        raise ModelLoadError(f"{path}: tokenizer_class {cls!r} is not a WordPiece tokenizer this import supports")
    config: dict[str, Any] = {"tokenizer_class": cls, "do_lower_case": bool(raw.get("do_lower_case", True))}
    config.update({key: raw[key] for key in ("strip_accents", "tokenize_chinese_chars") if raw.get(key) is not None})
    for key in SPECIAL_TOKENS:
        value = raw.get(key)
        value = value.get("content") if isinstance(value, dict) else value  # HF AddedToken form
        if value:
            config[key] = str(value)
    config["model_max_length"] = max_len
    return config


def _license(src: Path) -> str | None:
    readme = src / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    match = re.search(r"^license:[ \t]*['\"]?([^'\"\n]+?)['\"]?[ \t]*$", text, flags=re.MULTILINE)
    return match[1] if match else None


def convert_hf_directory(src_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert a Hugging Face BERT / ERNIE folder (config.json + safetensors + tokenizer) into ``out_dir``."""

    src = Path(src_dir)
    if not src.is_dir():
        raise ModelLoadError(f"{src}: not a directory")
    if not (src / "config.json").is_file():
        raise ModelLoadError(f"{src}: no config.json (a Hugging Face model folder needs one)")
    model_type, kwargs = paddle_config(read_json(src / "config.json"))
    hf_state, weight_files = _read_safetensors(src)
    state, dropped = paddle_state_dict(hf_state, model_type)
    if dropped:
        log.warning("%s: dropped %d tensor(s) that are not part of the base model: %s", src, len(dropped), dropped)
    extra: dict[str, Any] = {}
    if (src / "vocab.txt").is_file():
        tok_config = _tokenizer_config(src, kwargs["max_position_embeddings"])
        extra = {"vocab.txt": src / "vocab.txt",
                 "tokenizer_config.json": (json.dumps(tok_config, ensure_ascii=False, indent=2) + "\n").encode()}
    if (src / "tokenizer.json").is_file():
        tokenizer: Any = src / "tokenizer.json"
    elif extra:
        with tempfile.TemporaryDirectory() as tok_dir:
            Path(tok_dir, "tokenizer_config.json").write_bytes(extra["tokenizer_config.json"])
            try:
                tokenizer = build_tokenizer(src / "vocab.txt", tok_dir)
            except ModelLoadError as err:
                raise ModelLoadError(f"{src}: cannot build tokenizer.json: {err}") from None
    else:
        raise ModelLoadError(f"{src}: no tokenizer.json and no vocab.txt")
    source_files = [src / "config.json", *weight_files, *(src / n for n in ("model.safetensors.index.json",
                    "tokenizer.json", "vocab.txt", "tokenizer_config.json", "README.md") if (src / n).is_file())]
    provenance = {"source": {"kind": "huggingface", "path": str(src.resolve()),
                             "files": {p.name: sha256_file(p) for p in source_files}},
                  "license": _license(src), "model_type": model_type, "dropped_tensors": dropped}
    return save_model_dir(state, model_type, kwargs, out_dir, tokenizer_json=tokenizer, provenance=provenance,
                          allow_missing=("pooler.",), extra_files=extra)
