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


@pytest.mark.parametrize("which", ["mc", "ml"])
def test_deploy_predictor_matches_paddle_tag_predict(which, request, thucnews_small, poetry_small):
    from deploy.predictor import Predictor

    ckpt = load_checkpoint(request.getfixturevalue(f"{which}_checkpoint"))
    data = thucnews_small if which == "mc" else poetry_small
    texts = [row["text"] for row in read_jsonl(data["dev"])[:40]] + ["￥199元 3.5℃ 50% ©2024 iPhone15 →"]
    expected = predict_texts(ckpt, texts, top_k=len(ckpt.labels))
    got = Predictor(request.getfixturevalue(f"{which}_export"), top_k=len(ckpt.labels)).predict(texts)
    assert [g["tags"] for g in got] == [e["tags"] for e in expected]
    for g, e in zip(got, expected):
        np.testing.assert_allclose([g["scores"][k] for k in e["scores"]], list(e["scores"].values()), atol=2e-4)


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
