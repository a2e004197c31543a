"""Train → export → deploy: the Paddle-free runner and server tag real text exactly like paddle_tag."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from helpers import REPO, read_jsonl

from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.predictor import predict_texts


@pytest.mark.parametrize("which", ["mc", "ml", "long"])
def test_deploy_predictor_matches_paddle_tag_predict(which, request, thucnews_small, poetry_small):
    from deploy.predictor import Predictor

    ckpt = load_checkpoint(request.getfixturevalue(f"{which}_checkpoint"))
    data = thucnews_small if which == "mc" else poetry_small
    texts = [row["text"] for row in read_jsonl(data["dev"])[:40]] + ["￥199元 3.5℃ 50% ©2024 iPhone15 →", "月",
                                                                     "山水" * 5000]
    expected = predict_texts(ckpt, texts, top_k=len(ckpt.labels))
    got = Predictor(request.getfixturevalue(f"{which}_export"), top_k=len(ckpt.labels)).predict(texts)
    assert [g["tags"] for g in got] == [e["tags"] for e in expected]
    assert [g["truncated"] for g in got] == [e["truncated"] for e in expected]
    assert got[-1]["truncated"] and not got[-2]["truncated"]
    for g, e in zip(got, expected):
        np.testing.assert_allclose([g["scores"][k] for k in e["scores"]], list(e["scores"].values()), atol=2e-4)


def test_deploy_reads_the_same_windows_and_characters_as_training(long_export, long_checkpoint, poetry_small):
    from deploy.tokenizer import TextTokenizer, char_codes

    from paddle_tag.data.text_inputs import TextInputSpec, encode_for_model, pad_chars

    ckpt = load_checkpoint(long_checkpoint)
    spec = TextInputSpec.from_config(ckpt.config.Data, ckpt.config.Model)
    texts = [row["text"] for row in read_jsonl(poetry_small["train"])] + ["月", "西湖" * 3000, "a\u3000b c\td😀"]
    training = encode_for_model(ckpt.tokenizer, texts, spec)
    deployed = TextTokenizer(long_export / "tokenizer.json", spec.max_seq_len, ckpt.tokenizer.pad_token_id,
                             overlap=spec.window_overlap, max_windows=spec.max_windows)
    windows, cut = deployed.windows(texts)
    assert windows == training.windows
    assert sum(len(w) > 1 for w in windows) > 200  # most poems span several windows of 32 tokens
    codes, past = char_codes(texts, spec.wide_max_chars, spec.min_chars)
    np.testing.assert_array_equal(codes, pad_chars(training.chars, spec.min_chars))
    assert [a or b for a, b in zip(cut, past)] == training.cut.tolist()


def test_windowed_wide_export_parity_and_manifest(long_export):
    from deploy.manifest import load_manifest

    from paddle_tag.export import read_manifest

    manifest = read_manifest(long_export)
    assert manifest["format_version"] == 2
    assert manifest["windows"] == {"overlap": 8, "max_windows": 6}
    assert manifest["wide"] == {"ngram_max": 3, "buckets": 4096, "idf": True, "max_chars": 4096}
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "char_ids"]
    assert manifest["inputs"][0]["shape"] == ["batch", "windows", "sequence"]
    fp32, int8 = manifest["parity"]["fp32"], manifest["parity"]["int8"]
    assert fp32["multi_window_samples"] > 50 and fp32["tags_identical"] and fp32["max_abs_diff"] < 1e-4
    assert int8["max_abs_diff"] < 0.2
    deployed = load_manifest(long_export)
    assert deployed.windows.max_windows == 6 and deployed.wide.max_chars == 4096


def test_int8_keeps_the_wide_table_in_fp32(long_export, long_checkpoint):
    import onnx

    from paddle_tag.export.variants import table_gathers

    shape = tuple(load_checkpoint(long_checkpoint).model.wide.table.weight.shape)
    fp32, int8 = (onnx.load(str(long_export / name)) for name in ("model.onnx", "model_int8.onnx"))
    assert table_gathers(fp32, [shape])  # the wide part's n-gram lookups
    kept = table_gathers(int8, [shape])
    assert kept, "the INT8 model has no Gather on the FP32 n-gram table"
    tables = {init.name: init for init in int8.graph.initializer}
    gathers = [n for n in int8.graph.node if n.name in kept]
    assert all(tables[n.input[0]].data_type == onnx.TensorProto.FLOAT for n in gathers)
    # the encoder's token embedding is still quantised
    assert any(init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 2 and init.dims[1] != shape[1]
               for init in int8.graph.initializer)


def test_deploy_server_serves_a_real_export(mc_export, mc_checkpoint, thucnews_small):
    texts = [row["text"] for row in read_jsonl(thucnews_small["dev"])[:5]]
    proc = subprocess.Popen([sys.executable, "-m", "deploy.serve", "--model-dir", str(mc_export), "--device", "cpu",
                             "--port", "0", "--log-level", "warning"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for _ in range(200):
            match = re.search(r"listening on http://[\d.]+:(\d+)", proc.stderr.readline())
            if match:
                port = int(match.group(1))
                break
        assert port, "server did not announce its port"
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5).status == 200:
                    break
            except OSError:
                pass
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", json.dumps({"texts": texts}).encode(),
                                     {"Content-Type": "application/json"})
        results = json.loads(urllib.request.urlopen(req, timeout=30).read())["results"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    expected = predict_texts(load_checkpoint(mc_checkpoint), texts)
    assert [r["tags"] for r in results] == [e["tags"] for e in expected]
    assert proc.returncode == 0
