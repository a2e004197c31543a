"""FP16 and INT8 variants of the FP32 ONNX model. Inputs stay int64 ids, outputs float32 logits.

FP16: ``onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)``. On the ERNIE graph
it leaves a ``Cast`` node with ``to=FLOAT`` whose output it has declared float16 (the attention-mask cast),
so ONNX Runtime refuses the model ("Type (tensor(float16)) of output arg ... does not match expected type
(tensor(float))"). Putting ``Cast`` on the converter's block list makes it hang. :func:`fix_cast_types`
sets each such Cast's ``to`` to the float type the converter declared for its output (read from the
graph's ``value_info`` / outputs, never guessed), then the model must pass ``onnx.checker`` with strict
type inference and load in ONNX Runtime.

INT8: ONNX Runtime's dynamic quantisation (weights QInt8, activations quantised on the fly) of the FP32
graph after :func:`~paddle_tag.export.fusion.fuse_attention` (each self-attention block one
``com.microsoft.Attention`` node, which becomes one ``QAttention``: Q, K and V in one INT8 GEMM; the
other MatMuls, Gemm and the embedding Gather as before), with per-channel weight scales and
``reduce_range`` (7-bit weights). Without ``reduce_range`` the u8×s8 products saturate on CPUs without
VNNI (AVX2's ``vpmaddubsw`` adds pairs into int16): on the small ERNIE the largest logit error was 1.43
and 0.5 % of the test titles changed tag; with it, 0.13 and 0.2 %, at the same speed. Written through
temp files (the models here are far below 2 GB, so no external-data handling is needed).
"""
from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import TensorProto

from paddle_tag.errors import ExportError
from paddle_tag.export.fusion import fuse_attention
from paddle_tag.export.onnx_convert import check, session

#: the file of each Export.variants value (the names and their check: paddle_tag.config.schema.EXPORT_VARIANTS)
FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def _subgraphs(graph: onnx.GraphProto):
    """``graph`` and every graph nested in node attributes (If/Loop/Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _subgraphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _subgraphs(sub)


def declared_types(graph: onnx.GraphProto) -> dict[str, int]:
    """Element type of every tensor the graph declares (value_info, inputs, outputs, initializers)."""
    types = {init.name: init.data_type for init in graph.initializer}
    for info in (*graph.value_info, *graph.input, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    return types


def fix_cast_types(model: onnx.ModelProto) -> list[str]:
    """Make every float-to-float ``Cast`` cast to the type declared for its output, in place.

    Returns the names of the nodes changed. A Cast whose output type is not declared, or is not a float
    type, is left alone.
    """
    changed = []
    for graph in _subgraphs(model.graph):
        types = declared_types(graph)
        for node in graph.node:
            if node.op_type != "Cast" or (node.domain or "") != "":
                continue
            want = types.get(node.output[0])
            for attr in node.attribute:
                if attr.name == "to" and want in FLOAT_TYPES and attr.i in FLOAT_TYPES and attr.i != want:
                    attr.i = want
                    changed.append(node.name or node.output[0])
    return changed


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, float32 logits out; checked and loaded in ONNX Runtime."""
    from onnxconverter_common import float16

    with warnings.catch_warnings():  # one "will be truncated to 1e-07" warning per tiny weight
        warnings.simplefilter("ignore")
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    fix_cast_types(half)
    half.producer_name = model.producer_name + " + onnxconverter-common float16"
    check(half)
    _loads(half, "fp16")
    return half


def gelu_fed_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMuls that read a GELU's output (the feed-forward output projections).

    paddle2onnx writes GELU as ``x * 0.5 * (1 + erf(x / sqrt 2))``: a MatMul counts when an ``Erf`` is at
    most four producers up its first input. Their input is where BERT-family activations have outliers,
    which per-tensor dynamic INT8 quantisation handles worst."""
    producer = {out: node for node in model.graph.node for out in node.output}

    def near_erf(name: str, hops: int) -> bool:
        node = producer.get(name)
        if node is None or hops == 0:
            return False
        return node.op_type == "Erf" or any(near_erf(i, hops - 1) for i in node.input)

    return [n.name for n in model.graph.node if n.op_type == "MatMul" and near_erf(n.input[0], 4)]


def table_gathers(model: onnx.ModelProto, shapes: Sequence[tuple[int, ...]]) -> list[str]:
    """Names of the Gathers that read a weight table of one of ``shapes`` (the wide part's n-gram table).

    Dynamic quantisation gives a Gather's table one scale: on the wide part's SGD-trained table, where a few
    decisive n-grams carry large weights and most rows small ones, the small rows round to zero (poems: 94.0 %
    of the test poems kept their tags with the table in INT8, 95.5 % with it in FP32, the rest unchanged)."""
    wanted = {tuple(shape) for shape in shapes}
    tables = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Gather" and tables.get(n.input[0]) in wanted]


def to_int8(model: onnx.ModelProto, keep_fp32: str = "none",
            fp32_tables: Sequence[tuple[int, ...]] = ()) -> onnx.ModelProto:
    """Attention fused, then dynamic INT8 quantisation (QInt8 per-channel 7-bit weights) with ONNX Runtime;
    checked and loaded. ``keep_fp32="ffn_out"`` leaves the feed-forward output MatMuls in FP32
    (:func:`gelu_fed_matmuls`); Gathers on tables of ``fp32_tables`` shapes stay FP32 (:func:`table_gathers`).
    ``model`` itself is not changed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fused = copy.deepcopy(model)
    fuse_attention(fused)  # 0 blocks matched: plain MatMuls are quantised as before
    with tempfile.TemporaryDirectory(prefix="paddle_tag_int8_") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fused, str(src))
        quiet = logging.getLogger()
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "Please consider to run pre-processing" (we fold beforehand)
        try:
            excluded = gelu_fed_matmuls(fused) if keep_fp32 == "ffn_out" else []
            excluded += table_gathers(fused, fp32_tables)
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                             nodes_to_exclude=excluded)
        except Exception as exc:
            raise ExportError(f"INT8 quantisation failed: {type(exc).__name__}: {exc}") from exc
        finally:
            quiet.setLevel(level)
        quant = onnx.load(str(dst))
    quant.producer_name = model.producer_name + " + onnxruntime quantize_dynamic"
    check(quant)
    _loads(quant, "int8")
    return quant


def _loads(model: onnx.ModelProto, name: str) -> None:
    try:
        session(model)
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph
        raise ExportError(f"ONNX Runtime cannot load the {name} model: {exc}") from None
