"""Damaged checkpoints: every corruption gives one line that names the file and what to do, and exit code 2.

A real tiny run's ``best/`` and ``last/`` are copied and damaged the ways a disk, a careless edit or a killed copy
would: flipped bytes, broken JSON, a truncated or missing optimizer file, with and without the checksum
manifest (a checkpoint whose ``checkpoint.json`` was lost is read like one from before the manifest existed).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import run_tool

from paddle_tag.config import load_config
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import MANIFEST, load_checkpoint
from paddle_tag.errors import ModelLoadError


@pytest.fixture()
def run_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run's output directory (``best/`` and ``last/``), free to damage."""
    out = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent, out, ignore=shutil.ignore_patterns(".*"))
    return out


def flip_bytes(path: Path, count: int = 512) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def damage(path: Path, how: str) -> None:
    if how == "broken json":
        path.write_text('{"thresholds": [0.5,', encoding="utf-8")
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif how == "delete":
        path.unlink()
    else:
        raise AssertionError(how)


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_flipped_weight_bytes_fail_eval_predict_and_export(run_copy, tmp_path):
    flip_bytes(run_copy / "best" / "model.safetensors")
    line = one_line_error(run_tool("eval.py", "-o", f"Global.checkpoint={run_copy / 'best'}"))
    assert "model.safetensors was changed after the checkpoint was written" in line
    line = one_line_error(run_tool("predict.py", "-o", f"Global.checkpoint={run_copy / 'best'}", "--text", "股市"))
    assert "model.safetensors was changed" in line
    line = one_line_error(run_tool("export_model.py", "-o", f"Global.checkpoint={run_copy / 'best'}",
                                   "-o", f"Export.output_dir={tmp_path / 'export'}"))
    assert "model.safetensors was changed" in line and not (tmp_path / "export").exists()


@pytest.mark.parametrize("with_manifest", [True, False], ids=["checksummed", "manifest lost"])
@pytest.mark.parametrize("name", ["model_config.json", "thresholds.json", "labels.json"])
def test_damaged_json_of_a_tagger_checkpoint_is_named(run_copy, name, with_manifest):
    best = run_copy / "best"
    damage(best / name, "broken json")
    if not with_manifest:
        (best / MANIFEST).unlink()
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(best)
    message = str(info.value)
    assert name in message and "\n" not in message
    assert ("was changed" in message) if with_manifest else ("is damaged" in message and "other checkpoint" in message)


@pytest.mark.parametrize("with_manifest", [True, False], ids=["checksummed", "manifest lost"])
@pytest.mark.parametrize("name, how", [("trainer_state.json", "broken json"), ("optimizer.safetensors", "truncate"),
                                       ("optimizer.safetensors", "delete")])
def test_damaged_training_state_stops_resume_with_advice(run_copy, name, how, with_manifest):
    last = run_copy / "last"
    damage(last / name, how)
    if not with_manifest:
        (last / MANIFEST).unlink()
    config = load_config(run_copy / "best" / "config.yaml", [f"Global.output_dir={run_copy}", "Global.resume=true"])
    with pytest.raises(ModelLoadError) as info:
        build_run(config).fit()
    message = str(info.value)
    assert name in message and "\n" not in message
    if with_manifest:
        assert ("is missing" if how == "delete" else "was changed after the checkpoint was written") in message
    elif how == "delete":
        assert "not a training checkpoint to resume from" in message
    else:
        assert "is damaged" in message and "Global.resume=false" in message


def test_resume_from_a_damaged_checkpoint_exits_2_through_the_tool(run_copy):
    damage(run_copy / "last" / "trainer_state.json", "broken json")
    (run_copy / "last" / MANIFEST).unlink()
    line = one_line_error(run_tool("train.py", "-c", str(run_copy / "best" / "config.yaml"),
                                   "-o", f"Global.output_dir={run_copy}", "-o", "Global.resume=true"))
    assert "trainer_state.json is damaged" in line and "Global.resume=false" in line
