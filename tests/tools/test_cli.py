"""The entry scripts: user mistakes exit with code 2 and a one-line reason; --input works."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO, read_jsonl, tiny_overrides


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr[-2000:]


def test_predict_from_input_file_prints_one_json_line_per_text(tiny_checkpoint, thucnews_small, tmp_path):
    texts = [row["text"] for row in read_jsonl(thucnews_small["dev"])[:7]]
    src = tmp_path / "new_items.jsonl"
    src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    proc = run("predict.py", "-o", f"Global.checkpoint={tiny_checkpoint}", "--input", str(src), "--top-k", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in rows] == texts
    assert all(len(r["scores"]) == 3 and len(r["tags"]) == 1 for r in rows)


def test_predict_errors(tiny_checkpoint, tmp_path):
    assert_user_error(run("predict.py", "-o", f"Global.checkpoint={tmp_path / 'missing'}", "--text", "x"),
                      "checkpoint not found")
    assert_user_error(run("predict.py", "--text", "x"), "needs -o Global.checkpoint")
    assert_user_error(run("predict.py", "-o", f"Global.checkpoint={tiny_checkpoint}"), "either --text")
    assert_user_error(run("predict.py", "-o", f"Global.checkpoint={tiny_checkpoint}", "--text", "  "),
                      "empty text")


def test_eval_names_a_label_training_never_saw(tiny_checkpoint, tmp_path):
    bad = tmp_path / "eval.jsonl"
    bad.write_text('{"text": "皇马击败巴萨", "labels": ["体育"]}\n{"text": "新款手机发布", "labels": ["数码"]}\n',
                   encoding="utf-8")
    assert_user_error(run("eval.py", "-o", f"Global.checkpoint={tiny_checkpoint}", "-o", f"Data.eval_path={bad}"),
                      "'数码'", f"{bad}:2")


def test_train_reports_bad_data_with_file_and_line(thucnews_small, vocab_file, tmp_path):
    broken = tmp_path / "train.jsonl"
    lines = thucnews_small["train"].read_text(encoding="utf-8").splitlines()[:20]
    lines.insert(11, '{"text": "缺了右括号", "labels": ["体育"]')
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    overrides = tiny_overrides({"train": broken, "dev": thucnews_small["dev"]}, tmp_path / "out", vocab_file)
    proc = run("train.py", "-c", str(REPO / "configs/text/thucnews_ernie_small.yaml"),
               *[a for o in overrides for a in ("-o", o)])
    assert_user_error(proc, f"{broken}:12: invalid JSON")
    assert not (tmp_path / "out" / "last").exists()
