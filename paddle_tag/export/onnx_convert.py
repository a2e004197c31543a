"""Paddle static graph → ONNX (paddle2onnx), then a clean, folded FP32 graph ``input_ids`` (+ ``char_ids``) →
``logits``.

Two things about paddle2onnx 2.1 shape this module:

- ``paddle2onnx.export`` runs Polygraphy's constant folding by default, and sets
  ``POLYGRAPHY_AUTOINSTALL_DEPS=1`` for it, which pip-installs packages at run time. The product never
  installs anything at run time: we call it with ``save_file=None`` (it returns the ONNX bytes before any
  optimiser runs) and ``optimize_tool="None"``, and fold constants ourselves with ONNX Runtime's
  hardware-independent *basic* graph optimisations (constant folding, Identity removal, MatMul+Add → Gemm:
  standard ONNX operators only), saved offline.
- It swallows conversion exceptions: it logs them and calls ``sys.exit(-1)``. We catch that, and check
  the bytes it returns, so a failed conversion raises :class:`~paddle_tag.errors.ExportError`.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Union

import onnx

from paddle_tag.errors import ExportError
from paddle_tag.export.fusion import prune_to_cls, remove_dead_nodes

OUTPUT_NAME = "logits"
#: the contract's inputs in order, by rank, with their symbolic dims (what deploy/ and manifest.json say)
INPUT_DIMS = {"input_ids": {2: ("batch", "sequence"), 3: ("batch", "windows", "sequence")},
              "char_ids": {2: ("batch", "chars")},
              "history": {2: ("batch", None)}}  # a recommender's left-padded item indices, fixed length
OUTPUT_DIMS = ("batch", None)  # None: keep the fixed number of labels

ModelSource = Union[bytes, str, os.PathLike, onnx.ModelProto]


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Send this process's stdout/stderr (file descriptors 1 and 2, so C++ prints too) to a buffer.

    Yields a list that holds the captured text once the block ends.
    """
    out: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", errors="replace"))


def paddle_to_onnx(model_json: str | os.PathLike, params: str | os.PathLike, opset: int = 13) -> bytes:
    """Convert a PIR ``model.json`` + ``model.pdiparams`` to ONNX bytes, without any optimiser or install."""
    import paddle2onnx

    result, error = None, None
    with captured_output() as log:
        try:
            result = paddle2onnx.export(str(model_json), str(params), save_file=None, opset_version=opset,
                                        enable_onnx_checker=True, optimize_tool="None")
        except (Exception, SystemExit) as exc:  # paddle2onnx logs the real error, then sys.exit(-1)
            error = exc
    if error is not None or not isinstance(result, (bytes, bytearray)) or not result:
        tail = "\n".join(line for line in log[0].splitlines() if line.strip())[-2000:]
        raise ExportError(f"paddle2onnx could not convert {model_json} (opset {opset})"
                          + (f": {type(error).__name__}: {error}" if error is not None else "")
                          + (f"\n{tail}" if tail else ""))
    try:
        onnx.load_from_string(bytes(result))
    except Exception as exc:  # protobuf DecodeError and friends
        raise ExportError(f"paddle2onnx returned bytes that are not an ONNX model ({exc})") from None
    return bytes(result)


def load_model(source: ModelSource) -> onnx.ModelProto:
    """An ``onnx.ModelProto`` from bytes, a path or a model."""
    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (bytes, bytearray)):
        return onnx.load_from_string(bytes(source))
    return onnx.load(str(source))


def rename_io(model: onnx.ModelProto, input_names: tuple[str, ...] = ("input_ids",),
              output_name: str = OUTPUT_NAME) -> None:
    """Give the graph inputs (in order) and its single output the contract names and symbolic dims, in place."""
    graph = model.graph
    inits = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != len(input_names) or len(graph.output) != 1:
        raise ExportError(f"expected inputs {list(input_names)} and one output, the ONNX graph has "
                          f"{[i.name for i in inputs]} → {[o.name for o in graph.output]}")
    renames = {info.name: name for info, name in zip(inputs, input_names)}
    renames[graph.output[0].name] = output_name
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for info in (*inputs, graph.output[0]):
        info.name = renames[info.name]
        rank = len(info.type.tensor_type.shape.dim)
        dims = OUTPUT_DIMS if info.name == output_name else INPUT_DIMS[info.name].get(rank)
        if dims is None or len(dims) != rank:
            raise ExportError(f"{info.name}: unexpected rank {rank} in the ONNX graph")
        for dim, name in zip(info.type.tensor_type.shape.dim, dims):
            if name is not None:
                dim.Clear()
                dim.dim_param = name


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's basic (hardware-independent) optimisations, saved as a plain ONNX model."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="paddle_tag_fold_") as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        folded = onnx.load(options.optimized_model_filepath)
    used = {node.domain or "" for node in folded.graph.node} | {""}
    keep = [op for op in folded.opset_import if (op.domain or "") in used]
    del folded.opset_import[:]
    folded.opset_import.extend(keep)
    return folded


def finalize_fp32(onnx_bytes: bytes, input_names: tuple[str, ...] = ("input_ids",)) -> onnx.ModelProto:
    """paddle2onnx output → the FP32 model we ship: contract names, folded constants, dead nodes removed,
    the last layer computed for the [CLS] token only when only that token is read
    (:func:`~paddle_tag.export.fusion.prune_to_cls`, standard operators), checked."""

    model = load_model(onnx_bytes)
    rename_io(model, input_names)
    model = fold_constants(model)
    remove_dead_nodes(model)
    prune_to_cls(model)
    model.producer_name = "paddle_tag (paddle2onnx + onnxruntime basic folding)"
    check(model)
    return model


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with full (strict type/shape) inference; raise :class:`ExportError` if it fails."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        raise ExportError(f"the exported ONNX model is invalid: {exc}") from None


def session(source: ModelSource, threads: int = 0):
    """An ONNX Runtime CPU session (quiet logs); ``threads=0`` lets ORT choose."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if isinstance(source, onnx.ModelProto):
        source = source.SerializeToString()
    if isinstance(source, (str, os.PathLike)):
        source = str(source)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
