"""Conversion steps: paddle2onnx failures surface, the FP16 Cast fix, graph names, variant parsing."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from paddle_tag.errors import ExportError
from paddle_tag.export.onnx_convert import check, paddle_to_onnx, rename_io, session
from paddle_tag.export.static import save_static
from paddle_tag.export.variants import fix_cast_types, to_fp16


def masked_scale_model(input_name: str = "ids", output_name: str = "out") -> onnx.ModelProto:
    """The ERNIE attention-mask pattern in miniature: Cast(bool → FLOAT) feeding float arithmetic."""
    nodes = [helper.make_node("Equal", [input_name, "zero"], ["is_pad"]),
             helper.make_node("Not", ["is_pad"], ["keep"]),
             helper.make_node("Cast", ["keep"], ["mask"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["mask", "w"], [output_name])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(input_name, TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["b", "s"])],
        [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
         numpy_helper.from_array(np.array(2.5, dtype=np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_fp16_converter_breaks_casts_and_fix_cast_types_repairs_them():
    from onnxconverter_common import float16

    model = masked_scale_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    # the converter's output as it is: declared float16, cast to FLOAT → rejected by checker and ORT
    with pytest.raises(ExportError, match="Inferred elem type differs"):
        check(half)
    with pytest.raises(Exception, match="does not match expected type"):
        ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    assert fix_cast_types(half) == ["mask"]
    check(half)
    ids = np.array([[101, 7, 0], [101, 0, 0]], dtype=np.int64)
    out = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[2.5, 2.5, 0.0], [2.5, 0.0, 0.0]])
    assert fix_cast_types(half) == []  # idempotent


def test_to_fp16_keeps_int64_in_float32_out():
    half = to_fp16(masked_scale_model())
    sess = session(half)
    assert sess.get_inputs()[0].type == "tensor(int64)" and sess.get_outputs()[0].type == "tensor(float)"
    assert any(init.data_type == TensorProto.FLOAT16 for init in half.graph.initializer)


def test_rename_io_gives_contract_names_and_dims():
    model = masked_scale_model("x", "fetch_name_0")
    rename_io(model)
    check(model)
    sess = session(model)
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [("input_ids", ["batch", "sequence"])]
    assert [o.name for o in sess.get_outputs()] == ["logits"]


def test_paddle2onnx_failure_raises_instead_of_exiting(mc_checkpoint, tmp_path):
    from paddle_tag.engine.checkpoint import load_checkpoint

    model_json, params = save_static(load_checkpoint(mc_checkpoint).model, tmp_path / "paddle")
    assert model_json.name == "model.json" and params.name == "model.pdiparams"
    model_json.write_text('{"program": "not a program"}', encoding="utf-8")
    with pytest.raises(ExportError, match="paddle2onnx could not convert"):
        paddle_to_onnx(model_json, params)
