"""Graph rewrites for CPU speed: [CLS]-only last layer and fused attention give the same logits."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import paddle
import pytest

from paddle_tag.config.schema import ModelConfig
from paddle_tag.export.fusion import MS_DOMAIN, fuse_attention, prune_to_cls, remove_dead_nodes
from paddle_tag.export.onnx_convert import check, fold_constants, load_model, paddle_to_onnx, rename_io, session
from paddle_tag.export.static import save_static
from paddle_tag.export.variants import gelu_fed_matmuls, to_int8
from paddle_tag.models import Tagger
from paddle_tag.models.encoders import encoder_from_sizes

LAYERS, HIDDEN, HEADS, LABELS = 3, 32, 4, 5


def raw_fp32(pooling: str, tmp_path) -> onnx.ModelProto:
    """A random-init tagger → paddle2onnx → named and folded, before any rewrite (as ``finalize_fp32`` starts)."""
    paddle.seed(0)
    cfg = ModelConfig(num_layers=LAYERS, hidden_size=HIDDEN, num_heads=HEADS, intermediate_size=64, max_position=64,
                      pooling=pooling)
    model = Tagger(encoder_from_sizes("ernie", cfg, vocab_size=200, pad_token_id=0), LABELS, pad_id=0, pooling=pooling)
    model.eval()
    model_json, params = save_static(model, tmp_path / pooling)
    onnx_model = load_model(paddle_to_onnx(model_json, params))
    rename_io(onnx_model)
    folded = fold_constants(onnx_model)
    remove_dead_nodes(folded)
    return folded


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fusion")
    return {p: raw_fp32(p, tmp) for p in ("cls", "mean")}


def inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 200, size=(6, 23)).astype("int64")
    ids[2, 9:] = 0  # padded rows
    ids[4, 3:] = 0
    return [ids, ids[:1, :5], ids[:, :1]]


def logits(model: onnx.ModelProto, ids: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"input_ids": ids})[0]


def test_cls_pruning_slices_the_last_layer_and_keeps_the_logits(graphs):
    base = graphs["cls"]
    pruned = copy.deepcopy(base)
    assert prune_to_cls(pruned) is True
    check(pruned)
    assert {op.domain for op in pruned.opset_import} == {""}  # standard operators only
    slices = [n for n in pruned.graph.node if n.name == "cls_token_slice"]
    assert len(slices) == 1
    for ids in inputs():
        np.testing.assert_allclose(logits(pruned, ids), logits(base, ids), atol=1e-5)
    assert prune_to_cls(pruned) is False  # already token 0 only: the last block no longer matches


def test_mean_pooling_is_not_pruned(graphs):
    model = copy.deepcopy(graphs["mean"])
    before = model.SerializeToString()
    assert prune_to_cls(model) is False
    assert model.SerializeToString() == before


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_fused_attention_gives_the_same_logits(graphs, pooling):
    base = graphs[pooling]
    fused = copy.deepcopy(base)
    assert fuse_attention(fused) == LAYERS
    ops = [n.op_type for n in fused.graph.node]
    assert ops.count("Attention") == LAYERS and "Softmax" not in ops
    attention = next(n for n in fused.graph.node if n.op_type == "Attention")
    assert attention.domain == MS_DOMAIN
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in attention.attribute}
    assert attrs["num_heads"] == HEADS and attrs["scale"] == pytest.approx((HIDDEN // HEADS) ** -0.5)
    assert attrs["mask_filter_value"] == pytest.approx(-10000.0)
    for ids in inputs():
        np.testing.assert_allclose(logits(fused, ids), logits(base, ids), atol=1e-5)


def test_pruned_then_fused_leaves_the_last_block_unfused(graphs):
    model = copy.deepcopy(graphs["cls"])
    prune_to_cls(model)
    assert fuse_attention(model) == LAYERS - 1
    for ids in inputs():
        np.testing.assert_allclose(logits(model, ids), logits(graphs["cls"], ids), atol=1e-5)


def test_int8_uses_qattention_and_tracks_fp32(graphs):
    model = copy.deepcopy(graphs["cls"])
    prune_to_cls(model)
    quant = to_int8(model)
    ops = [n.op_type for n in quant.graph.node]
    assert ops.count("QAttention") == LAYERS - 1 and "MatMulInteger" in ops
    assert "Attention" not in [n.op_type for n in model.graph.node]  # the FP32 graph is left alone
    for ids in inputs():
        assert np.abs(logits(quant, ids) - logits(model, ids)).max() < 0.5


def test_int8_can_keep_the_feed_forward_outputs_fp32(graphs):
    model = graphs["mean"]
    ffn_out = gelu_fed_matmuls(model)
    assert len(ffn_out) == LAYERS  # one per layer: the MatMul after GELU, not the one before it
    producers = {out: n for n in model.graph.node for out in n.output}
    assert all(producers[n.input[0]].op_type == "Mul" for n in model.graph.node if n.name in ffn_out)
    full, kept = to_int8(model), to_int8(model, keep_fp32="ffn_out")
    float_matmuls = [n for n in kept.graph.node if n.op_type == "MatMul"]
    assert len(float_matmuls) == LAYERS and not [n for n in full.graph.node if n.op_type == "MatMul"]
    assert [n.op_type for n in kept.graph.node].count("MatMulInteger") < [n.op_type for n in full.graph.node].count(
        "MatMulInteger")
    for ids in inputs():
        reference = logits(model, ids)
        assert np.abs(logits(kept, ids) - reference).max() < 0.5


def test_graph_without_the_pattern_is_left_alone():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 4])
    model = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Softmax", ["x"], ["y"])], "g",
                                                          [x], [y]), opset_imports=[onnx.helper.make_opsetid("", 13)])
    before = model.SerializeToString()
    assert fuse_attention(model) == 0 and prune_to_cls(model) is False
    assert model.SerializeToString() == before
