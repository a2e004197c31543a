"""Start-up validation of an export directory: every mismatch is a clear ManifestError."""
from __future__ import annotations

import json

import pytest

from deploy.manifest import ManifestError, load_manifest
from deploy.predictor import Predictor


def test_valid_exports_load(mc_export, ml_export):
    mc = load_manifest(mc_export)
    assert mc.task == "multi_class" and mc.labels == ("体育", "财经", "科技", "娱乐")
    assert mc.thresholds is None and set(mc.models) == {"fp32", "fp16", "int8"}
    ml = load_manifest(ml_export)
    assert ml.task == "multi_label" and ml.thresholds == (0.5, 0.5, 0.4)


def test_tampered_file_is_named(kit, mc_export):
    export = kit.copy(mc_export)
    with open(export / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ManifestError, match=r"model\.onnx: sha256 mismatch"):
        load_manifest(export)


def test_missing_file_is_named(kit, mc_export):
    export = kit.copy(mc_export)
    (export / "tokenizer.json").unlink()
    with pytest.raises(ManifestError, match=r"tokenizer\.json: listed in manifest\.json but missing"):
        load_manifest(export)


def test_labels_json_must_match(kit, mc_export):
    export = kit.copy(mc_export)
    (export / "labels.json").write_text(json.dumps(["体育", "财经", "科技", "游戏"], ensure_ascii=False))
    kit.write_manifest(export, kit.read_manifest(export))  # hashes fine, content differs
    with pytest.raises(ManifestError, match=r"labels\.json: labels differ .*index 3: '游戏' vs '娱乐'"):
        load_manifest(export)


def test_wrong_logits_width_in_the_model(kit):
    export = kit.make("multi_class", precisions=("fp32",), out_width=5)
    with pytest.raises(ManifestError, match="5 columns but the export has 4 labels"):
        Predictor(export, threads=1)


def test_symbolic_logits_width_is_still_checked(kit):
    """A graph that declares its width symbolically: ORT's inferred shape or the start-up run catch it."""
    export = kit.make("multi_class", precisions=("fp32",), out_width=3, symbolic_width=True)
    with pytest.raises(ManifestError, match=r"3 columns but the export has 4 labels|shape \[1, 3\]"):
        Predictor(export, threads=1)
    ok = kit.make("multi_class", precisions=("fp32",), symbolic_width=True)
    assert Predictor(ok, threads=1).predict(["球赛"])[0]["tags"] == ["体育"]


def test_wrong_input_name(kit):
    export = kit.make("multi_class", precisions=("fp32",), input_name="ids")
    with pytest.raises(ManifestError, match=r"takes inputs \['ids'\].*'input_ids'"):
        Predictor(export, threads=1)


def test_wrong_output_name(kit):
    export = kit.make("multi_class", precisions=("fp32",), output_name="scores")
    with pytest.raises(ManifestError, match=r"no output named 'logits'"):
        Predictor(export, threads=1)


def _edit(kit, export, rehash=True, **changes):
    copy = kit.copy(export)
    doc = kit.read_manifest(copy)
    doc.update(changes)
    kit.write_manifest(copy, doc, rehash=rehash)
    return copy


@pytest.mark.parametrize("changes, message", [
    ({"format_version": 3}, "format_version 3 is not supported"),
    ({"format_version": 2}, "missing key .windows. \\(format_version 2\\)"),
    ({"format_version": 2, "windows": {"overlap": 20, "max_windows": 4}, "wide": None},
     "must be at most max_seq_len - 3"),
    ({"format_version": 2, "windows": {"overlap": 2}, "wide": None}, "must be null or an object"),
    ({"format_version": 2, "windows": {"overlap": 2, "max_windows": 4}, "wide": None},
     "must be int64 \\[batch, windows, sequence\\]"),
    ({"format_version": 2, "windows": None, "wide": {"ngram_max": 3, "buckets": 10, "max_chars": 50}},
     "must list exactly 2 tensor"),
    ({"task": "ranking"}, "task must be one of"),
    ({"activation": "sigmoid"}, "needs activation 'softmax'"),
    ({"labels": ["体育", "体育", "科技", "娱乐"]}, "duplicate labels"),
    ({"max_seq_len": "128"}, "'max_seq_len' must be int"),
    ({"outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 7]}]}, r"must be \[batch, 4\]"),
    ({"models": {"fp32": {"file": "../model.onnx"}}}, "must be relative"),
    ({"models": {"bf16": {"file": "model.onnx"}}}, "unknown model precision 'bf16'"),
])
def test_bad_manifest_fields(kit, mc_export, changes, message):
    with pytest.raises(ManifestError, match=message):
        load_manifest(_edit(kit, mc_export, **changes))


def test_thresholds_must_cover_the_labels(kit, ml_export):
    with pytest.raises(ManifestError, match=r"threshold keys differ from labels \(missing \['山水'\]"):
        load_manifest(_edit(kit, ml_export, thresholds={"思乡": 0.5, "离别": 0.5}))
    with pytest.raises(ManifestError, match="needs 'thresholds'"):
        load_manifest(_edit(kit, ml_export, thresholds=None))
    with pytest.raises(ManifestError, match=r"threshold for '山水' must be a number in \[0, 1\]"):
        load_manifest(_edit(kit, ml_export, thresholds={"思乡": 0.5, "离别": 0.5, "山水": 1.5}))


def test_unlisted_model_file_and_bad_manifest_json(kit, mc_export):
    copy = kit.copy(mc_export)
    doc = kit.read_manifest(copy)
    del doc["files"]["model_int8.onnx"]
    kit.write_manifest(copy, doc, rehash=False)
    with pytest.raises(ManifestError, match=r"model_int8\.onnx is not listed in 'files'"):
        load_manifest(copy)
    (copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest\.json: invalid JSON"):
        load_manifest(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ManifestError, match=r"manifest\.json: file not found"):
        load_manifest(copy)
    with pytest.raises(ManifestError, match="export directory not found"):
        load_manifest(copy / "nope")
