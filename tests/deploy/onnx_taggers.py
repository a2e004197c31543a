"""Real small ONNX taggers for the deploy/ tests, and export directories made from them (:class:`ExportKit`).

The models are real graphs: Gather(embedding) → masked mean over the sequence (pad tokens ignored) → MatMul + Add
→ ``logits``, with dynamic batch and sequence dims. Some characters' embeddings point at one label, so texts have
predictable tags (e.g. 球/赛 → 体育). Only numpy and onnx: ``.ci/deploy_venv_check.sh`` runs these tests without
Paddle or paddle_tag.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
WHEEL = "cn_clip-1.6.0-py3-none-any.whl"
WHEEL_SHA256 = "1129e296d707a39450eb5e761903cfa3db89dd74a9ddfbd69f0d80c027046e75"
WHEEL_MEMBER = "cn_clip/clip/vocab.txt"

MC_LABELS = ["体育", "财经", "科技", "娱乐"]
MC_KEYWORDS = {"体育": "球赛", "财经": "股融", "科技": "芯网", "娱乐": "影歌"}
ML_LABELS = ["思乡", "离别", "山水"]
ML_KEYWORDS = {"思乡": "乡月", "离别": "别柳", "山水": "山水"}
ML_THRESHOLDS = {"思乡": 0.5, "离别": 0.5, "山水": 0.4}
MAX_SEQ_LEN = 16
STRENGTH = 12.0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_model(path: Path, vocab_size: int, num_labels: int, pad_id: int, keywords: dict[int, int], *,
                precision: str = "fp32", out_width: int | None = None, bias: float = 0.0,
                input_name: str = "input_ids", output_name: str = "logits",
                symbolic_width: bool = False, seed: int = 0, windows: bool = False,
                wide_chars: dict[str, int] | None = None) -> None:
    """Write a real ONNX tagger: embedding Gather → masked mean → MatMul + Add → logits.

    ``windows``: ``input_ids`` is ``[batch, windows, sequence]``, its windows flattened into one sequence.
    ``wide_chars``: a second input ``char_ids`` ``[batch, chars]`` (code points, 0 = padding); each listed
    character adds ``STRENGTH`` to its label's logit, averaged over the text's characters (a wide part)."""
    rng = np.random.default_rng(seed)
    width = out_width or num_labels
    dim = num_labels + 4
    emb = rng.normal(0.0, 0.05, (vocab_size, dim)).astype(np.float32)
    for token_id, label in keywords.items():
        emb[token_id, label] = STRENGTH
    weight = np.zeros((dim, width), dtype=np.float32)
    weight[:num_labels, :min(num_labels, width)] = np.eye(num_labels, min(num_labels, width))
    weight[num_labels:, :] = rng.normal(0.0, 0.05, (dim - num_labels, width))
    bias_v = np.full((width,), bias, dtype=np.float32)

    nodes, inits = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    def as_float(name: str, array: np.ndarray) -> str:
        """The initializer in the model's storage precision, as a float32 tensor in the graph."""
        if precision == "fp32":
            return const(name, array)
        if precision == "fp16":
            const(name + "_fp16", array.astype(np.float16))
            nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
            return name
        scale = np.float32(max(float(np.abs(array).max()), 1e-6) / 127.0)
        const(name + "_q", np.clip(np.round(array / scale), -127, 127).astype(np.int8))
        const(name + "_scale", np.array(scale, dtype=np.float32))
        const(name + "_zp", np.array(0, dtype=np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zp"], [name]))
        return name

    ids = input_name
    if windows:  # [batch, windows, sequence] → [batch, windows * sequence]: the mean runs over every window
        const("flat_shape", np.array([0, -1], dtype=np.int64))
        nodes.append(helper.make_node("Reshape", [input_name, "flat_shape"], ["ids_flat"]))
        ids = "ids_flat"
    if precision == "int8":  # quantized table: gather int8 rows, then dequantize
        scale = np.float32(np.abs(emb).max() / 127.0)
        const("emb_q", np.clip(np.round(emb / scale), -127, 127).astype(np.int8))
        const("emb_scale", np.array(scale, dtype=np.float32))
        const("emb_zp", np.array(0, dtype=np.int8))
        nodes.append(helper.make_node("Gather", ["emb_q", ids], ["tok_q"]))
        nodes.append(helper.make_node("DequantizeLinear", ["tok_q", "emb_scale", "emb_zp"], ["tok"]))
    elif precision == "fp16":
        const("emb_fp16", emb.astype(np.float16))
        nodes.append(helper.make_node("Gather", ["emb_fp16", ids], ["tok_fp16"]))
        nodes.append(helper.make_node("Cast", ["tok_fp16"], ["tok"], to=TensorProto.FLOAT))
    else:
        const("emb", emb)
        nodes.append(helper.make_node("Gather", ["emb", ids], ["tok"]))
    w = as_float("w", weight)
    b = as_float("b", bias_v)
    const("pad", np.array(pad_id, dtype=np.int64))
    const("axis1", np.array([1], dtype=np.int64))
    const("axis2", np.array([2], dtype=np.int64))
    const("one", np.array(1.0, dtype=np.float32))
    nodes += [
        helper.make_node("Equal", [ids, "pad"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["keep"]),
        helper.make_node("Cast", ["keep"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["count1"]),
        helper.make_node("Div", ["summed", "count1"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", w], ["proj"]),
        helper.make_node("Add", ["proj", b], ["deep" if wide_chars else output_name]),
    ]
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.INT64,
                                            ["batch", "windows", "sequence"] if windows else ["batch", "sequence"])]
    if wide_chars:
        buckets = 65536
        table = np.zeros((buckets, width), dtype=np.float32)
        for char, label in wide_chars.items():
            table[ord(char) % buckets, label] = STRENGTH
        const("wide_table", table)
        const("buckets", np.array(buckets, dtype=np.int64))
        const("zero", np.array(0, dtype=np.int64))
        nodes += [
            helper.make_node("Mod", ["char_ids", "buckets"], ["char_rows"]),
            helper.make_node("Gather", ["wide_table", "char_rows"], ["char_logits"]),
            helper.make_node("Greater", ["char_ids", "zero"], ["is_char"]),
            helper.make_node("Cast", ["is_char"], ["char_mask"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["char_mask", "axis2"], ["char_mask3"]),
            helper.make_node("Mul", ["char_logits", "char_mask3"], ["char_masked"]),
            helper.make_node("ReduceSum", ["char_masked", "axis1"], ["char_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["char_mask", "axis1"], ["char_count"], keepdims=1),
            helper.make_node("Max", ["char_count", "one"], ["char_count1"]),
            helper.make_node("Div", ["char_sum", "char_count1"], ["wide"]),
            helper.make_node("Add", ["deep", "wide"], [output_name]),
        ]
        inputs.append(helper.make_tensor_value_info("char_ids", TensorProto.INT64, ["batch", "chars"]))
    graph = helper.make_graph(
        nodes, "tiny_tagger",
        inputs,
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                       ["batch", "num_labels" if symbolic_width else width])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


MODEL_FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}


class ExportKit:
    """Make export directories (multi-class / multi-label) and edit their manifests."""

    def __init__(self, vocab: list[str], tokenizer_json: Path, root: Path) -> None:
        self.vocab = vocab
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.tokenizer_json = tokenizer_json
        self.root = root
        self._count = 0

    def make(self, task: str = "multi_class", *, max_seq_len: int = MAX_SEQ_LEN,
             precisions: tuple[str, ...] = ("fp32", "fp16", "int8"), windows: dict[str, int] | None = None,
             wide: dict[str, int] | None = None, wide_chars: dict[str, str] | None = None,
             **model_kw: Any) -> Path:
        """A complete, valid export directory with correct hashes; ``windows`` / ``wide`` (the manifest's
        entries) make a format-2 export, ``wide_chars`` maps characters to the labels the wide part gives."""
        self._count += 1
        out = self.root / f"export{self._count}_{task}"
        out.mkdir(parents=True)
        labels = MC_LABELS if task == "multi_class" else ML_LABELS
        words = MC_KEYWORDS if task == "multi_class" else ML_KEYWORDS
        keywords = {self.ids[ch]: labels.index(lab) for lab, chars in words.items() for ch in chars}
        model_kw.setdefault("bias", 0.0 if task == "multi_class" else -1.5)
        char_labels = {ch: labels.index(lab) for ch, lab in (wide_chars or {}).items()}
        for precision in precisions:
            build_model(out / MODEL_FILES[precision], len(self.vocab), len(labels), self.ids["[PAD]"],
                        keywords, precision=precision, windows=windows is not None,
                        wide_chars=char_labels if wide else None, **model_kw)
        shutil.copy(self.tokenizer_json, out / "tokenizer.json")
        (out / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
        doc = {
            "format_version": 1, "task": task, "labels": labels,
            "thresholds": dict(ML_THRESHOLDS) if task == "multi_label" else None,
            "activation": "softmax" if task == "multi_class" else "sigmoid",
            "max_seq_len": max_seq_len, "pad_id": self.ids["[PAD]"],
            "inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", len(labels)]}],
            "tokenizer": {"file": "tokenizer.json"},
            "models": {p: {"file": MODEL_FILES[p]} for p in precisions},
            "files": {},
            "parity": {}, "source": {"note": "tests/deploy fixture"}, "versions": {},
            "created": "2026-01-01T00:00:00Z",
        }
        if windows or wide:
            doc.update(format_version=2, windows=windows, wide=wide)
            if windows:
                doc["inputs"][0]["shape"] = ["batch", "windows", "sequence"]
            if wide:
                doc["inputs"].append({"name": "char_ids", "dtype": "int64", "shape": ["batch", "chars"]})
        self.write_manifest(out, doc)
        return out

    @staticmethod
    def read_manifest(export: Path) -> dict[str, Any]:
        return json.loads((export / "manifest.json").read_text(encoding="utf-8"))

    @staticmethod
    def write_manifest(export: Path, doc: dict[str, Any], rehash: bool = True) -> None:
        """Write ``doc`` as the manifest; with ``rehash``, list every file but the manifest with its sha256."""
        if rehash:
            doc["files"] = {p.name: sha256_bytes(p.read_bytes()) for p in sorted(export.iterdir())
                            if p.is_file() and p.name != "manifest.json"}
        (export / "manifest.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")

    def copy(self, export: Path) -> Path:
        """A fresh copy of an export directory (to tamper with)."""
        self._count += 1
        out = self.root / f"copy{self._count}_{export.name}"
        shutil.copytree(export, out)
        return out
