"""``python -m deploy.predict`` in a subprocess, and the no-Paddle rule for deploy/."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_predict_texts_as_json_lines(mc_export, run_module):
    result = run_module("deploy.predict", "--model-dir", mc_export, "--threads", 1, "--top-k", 2,
                        "--text", "皇马客场赢球", "--text", "股市大涨", "--text", "球" * 40)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["皇马客场赢球", "股市大涨", "球" * 40]
    assert [r["tags"] for r in rows] == [["体育"], ["财经"], ["体育"]]
    assert [r["truncated"] for r in rows] == [False, False, True]
    assert all(set(r) == {"text", "tags", "scores", "truncated"} and len(r["scores"]) == 2 for r in rows)


def test_predict_input_file_multi_label_int8_in_batches(ml_export, mc_export, run_module, tmp_path):
    texts = ["月下思乡", "折柳送别", "", "青山绿水", "山月"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t, "labels": ["x"]}, ensure_ascii=False) + "\n" if t else "\n"
                           for t in texts), encoding="utf-8")
    result = run_module("deploy.predict", "--model-dir", ml_export, "--input", src, "--batch-size", 2)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["tags"] for r in rows] == [["思乡"], ["离别"], ["山水"], ["思乡", "山水"]]
    int8 = run_module("deploy.predict", "--model-dir", mc_export, "--precision", "int8", "--text", "芯片")
    assert int8.returncode == 0 and json.loads(int8.stdout)["tags"] == ["科技"]


def _bad_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"txt": "oops"}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("case, message", [
    # CPU onnxruntime: CUDA is not offered; onnxruntime-gpu without CUDA libraries: it is offered, cannot load,
    # and ORT falls back to the CPU, which must still be an error (.ci/run checks both builds)
    ("gpu", r"--device gpu( needs CUDAExecutionProvider, but this onnxruntime build offers only \[.*'CPUExecutionProvider'"
            r"|: onnxruntime created the session without CUDAExecutionProvider)"),
    ("gpu_int8", "int8 is a dynamically quantized CPU model"),
    ("no_dir", "export directory not found"),
    ("tampered", r"model\.onnx: sha256 mismatch"),
    ("bad_line", r"bad\.jsonl:2: expected an object with a \"text\" string"),
    ("both", "give either --text"),
    ("empty_text", "text 2 is empty"),
])
def test_predict_user_errors_exit_2(case, message, mc_export, kit, run_module, tmp_path):
    model = ["--model-dir", mc_export]
    args = {
        "gpu": model + ["--device", "gpu", "--text", "球赛"],
        "gpu_int8": model + ["--device", "gpu", "--precision", "int8", "--text", "球赛"],
        "no_dir": ["--model-dir", tmp_path / "missing", "--text", "球赛"],
        "bad_line": model + ["--input", _bad_jsonl(tmp_path)],
        "both": model + ["--text", "球赛", "--input", _bad_jsonl(tmp_path)],
        "empty_text": model + ["--text", "球赛", "--text", "  "],
    }.get(case)
    if case == "tampered":
        export = kit.copy(mc_export)
        (export / "model.onnx").write_bytes((export / "model.onnx").read_bytes()[:-1])
        args = ["--model-dir", export, "--text", "球赛"]
    result = run_module("deploy.predict", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr, result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_deploy_never_imports_paddle(child_env):
    """Neither the source nor the loaded modules of deploy/ touch paddle, paddlenlp or paddle_tag."""
    pattern = re.compile(r"^\s*(import|from)\s+(paddle|paddlenlp|paddle_tag)\b", re.MULTILINE)
    for path in (REPO / "deploy").rglob("*.py"):
        assert not pattern.search(path.read_text(encoding="utf-8")), path
    code = ("import sys, deploy.serve, deploy.predict\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'paddle', 'paddlenlp', 'paddle_tag'})\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
