"""Predictor, tokenizer and providers on real tiny ONNX exports (CPU)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from deploy import DeployError
from deploy.manifest import load_manifest
from deploy.predictor import Predictor, sigmoid, softmax
from deploy.providers import ProviderError, create_session, pick_model
from deploy.tokenizer import TextTokenizer


def test_multi_class_tags_follow_the_keywords(mc_predictor):
    results = mc_predictor.predict(["皇马客场赢球 联赛", "股市大涨 融资", "芯片与网络", "新电影主题歌"])
    assert [r["tags"] for r in results] == [["体育"], ["财经"], ["科技"], ["娱乐"]]
    for r in results:
        assert next(iter(r["scores"])) == r["tags"][0]  # highest first
        assert len(r["scores"]) == 4 and r["truncated"] is False
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-3)


def test_multi_label_uses_per_label_thresholds(ml_predictor):
    results = ml_predictor.predict(["月下思乡", "折柳送别", "青山绿水", "今天天气不错", "山月"])
    assert [r["tags"] for r in results] == [["思乡"], ["离别"], ["山水"], [], ["思乡", "山水"]]
    # scores are independent sigmoids, not a distribution
    assert sum(results[4]["scores"].values()) > 1.0


def test_top_k_and_tag_scores_always_shown(ml_export):
    pred = Predictor(ml_export, threads=1, top_k=1)
    (row,) = pred.predict(["山月"])
    assert row["tags"] == ["思乡", "山水"]
    assert set(row["scores"]) == {"思乡", "山水"}


def test_truncation_is_reported_and_batching_does_not_change_scores(mc_predictor):
    long_text = "球" * 40  # 40 tokens + [CLS] [SEP] > max_seq_len 16
    texts = ["股市", long_text, "芯片", "新电影主题歌"]
    together = mc_predictor.predict(texts)
    alone = [mc_predictor.predict([t])[0] for t in texts]
    assert together == alone  # masked mean: padding never leaks into a text's score
    assert [r["truncated"] for r in together] == [False, True, False, False]
    assert mc_predictor.predict(texts, batch_size=3) == together


def test_tokenizer_truncates_and_pads_with_pad_id(mc_export):
    manifest = load_manifest(mc_export)
    tok = TextTokenizer(manifest.tokenizer_file, manifest.max_seq_len, manifest.pad_id)
    enc = tok.encode(["你好", "球" * 14, "球" * 15])
    assert enc.input_ids.dtype == np.int64 and enc.input_ids.shape == (3, 16)
    assert enc.truncated == [False, False, True]  # 14 + 2 specials fits exactly; 15 + 2 does not
    assert (enc.input_ids[0, 4:] == manifest.pad_id).all()
    assert enc.input_ids[0, 0] != manifest.pad_id
    assert tok.encode([]).input_ids.shape == (0, 0)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_other_precisions_agree_with_fp32(mc_export, mc_predictor, precision, caplog):
    with caplog.at_level(logging.WARNING):
        pred = Predictor(mc_export, "cpu", precision, threads=1)
    assert ("slower" in caplog.text) == (precision == "fp16")
    texts = ["皇马客场赢球", "股市大涨", "芯片与网络"]
    ours = pred.predict(texts)
    ref = mc_predictor.predict(texts)
    assert [r["tags"] for r in ours] == [r["tags"] for r in ref]
    np.testing.assert_allclose(pred.logits(texts), mc_predictor.logits(texts), atol=0.1)


def test_stable_activations():
    big = np.array([[1000.0, -1000.0, 0.0], [-1e4, -1e4, -1e4]])
    s = softmax(big)
    assert np.isfinite(s).all() and np.allclose(s.sum(axis=1), 1.0)
    assert s[0, 0] == pytest.approx(1.0)
    with np.errstate(over="raise"):
        g = sigmoid(big)
    assert g[0].tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_gpu_on_a_cpu_build_fails_loudly(mc_export):
    with pytest.raises(ProviderError, match=r"CUDAExecutionProvider.*CPUExecutionProvider"):
        Predictor(mc_export, "gpu", "fp32")


def test_gpu_int8_is_refused(mc_export):
    with pytest.raises(ProviderError, match="int8"):
        pick_model(load_manifest(mc_export), "gpu", "int8")


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_silent_cpu_fallback_is_caught(mc_export, monkeypatch):
    """ORT builds a CPU-only session when CUDA cannot load; the post-creation check must catch it."""
    from deploy import providers

    monkeypatch.setattr(providers, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="fell back to the CPU"):
        create_session(mc_export / "model.onnx", "gpu", "fp32")


def test_missing_precision_and_bad_threads(ml_export):
    with pytest.raises(DeployError, match="no fp16 model"):
        Predictor(ml_export, "cpu", "fp16")
    with pytest.raises(ProviderError, match="threads"):
        create_session(ml_export / "model.onnx", "cpu", threads=-1)
