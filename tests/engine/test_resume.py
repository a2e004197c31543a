"""Resume after a real kill: a run killed with SIGKILL and resumed ends exactly like an uninterrupted one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, tiny_overrides
from safetensors.numpy import load_file

CONFIG = str(REPO / "configs/text/thucnews_ernie_small.yaml")


def train_cmd(data, out: Path, vocab: str, *extra: str) -> list[str]:
    overrides = tiny_overrides(data, out, vocab, Global__epochs=6, Global__eval_every=5, Data__test_path="null")
    return [sys.executable, str(REPO / "tools/train.py"), "-c", CONFIG,
            *[a for o in [*overrides, *extra] for a in ("-o", o)]]


def saved_step(out: Path) -> int:
    try:
        return json.loads((out / "last/trainer_state.json").read_text())["global_step"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_resume_after_sigkill_matches_uninterrupted_run(thucnews_small, vocab_file, tmp_path):
    reference = tmp_path / "reference"
    proc = subprocess.run(train_cmd(thucnews_small, reference, vocab_file), capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = tmp_path / "killed"
    victim = subprocess.Popen(train_cmd(thucnews_small, killed, vocab_file), cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while saved_step(killed) < 20 and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if victim.poll() is not None:
        pytest.fail("training finished before it could be killed; make the run longer")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    step_at_kill = saved_step(killed)
    total = 6 * 25
    assert 20 <= step_at_kill < total

    proc = subprocess.run(train_cmd(thucnews_small, killed, vocab_file, "Global.resume=true"),
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[resume] from" in proc.stdout + proc.stderr

    ref_metrics = json.loads((reference / "metrics.json").read_text())
    got_metrics = json.loads((killed / "metrics.json").read_text())
    assert got_metrics["steps"] == ref_metrics["steps"] == total
    for part in ("best", "final"):
        for key, value in ref_metrics[part].items():
            assert got_metrics[part][key] == pytest.approx(value, abs=1e-6), (part, key)
    ref_w = load_file(str(reference / "last/model.safetensors"))
    got_w = load_file(str(killed / "last/model.safetensors"))
    for name, value in ref_w.items():
        np.testing.assert_allclose(got_w[name], value, atol=1e-6, err_msg=name)
