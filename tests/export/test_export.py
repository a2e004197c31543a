"""End to end: a trained tiny checkpoint → export directory → ONNX Runtime gives the Paddle model's logits."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import paddle
import pytest
from helpers import REPO, read_jsonl

from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.errors import ConfigError, ExportError, ParityError
from paddle_tag.export import export_checkpoint, read_manifest
from paddle_tag.export import exporter as exporter_mod
from paddle_tag.export.onnx_convert import session
from tokenizers import Tokenizer
from paddle_tag.export.variants import FILES
from paddle_tag.config.cli import run_cli

EXPECTED_FILES = {"labels.json", "manifest.json", "model.onnx", "model_fp16.onnx", "model_int8.onnx",
                  "tokenizer.json", "paddle/model.json", "paddle/model.pdiparams"}


def files_in(directory) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize("which", ["mc", "ml"])
def test_export_writes_the_contract_and_fp32_matches_paddle(which, request):
    export = request.getfixturevalue(f"{which}_export")
    ckpt = load_checkpoint(request.getfixturevalue(f"{which}_checkpoint"))
    assert files_in(export) == EXPECTED_FILES
    assert not list(export.parent.glob(".export.*"))  # no temp / old copies left behind
    manifest = read_manifest(export)  # validates keys, labels, every sha256
    assert manifest["task"] == ckpt.task and manifest["labels"] == ckpt.labels.names
    assert manifest["activation"] == ("softmax" if ckpt.task == "multi_class" else "sigmoid")
    if ckpt.task == "multi_label":
        assert manifest["thresholds"] == pytest.approx(dict(zip(ckpt.labels.names, ckpt.thresholds.tolist())))
    else:
        assert manifest["thresholds"] is None
    assert manifest["max_seq_len"] == 48 and manifest["pad_id"] == 0
    assert manifest["outputs"][0]["shape"] == ["batch", len(ckpt.labels)]
    assert set(manifest["versions"]) == {"paddle", "paddle2onnx", "onnx", "onnxruntime", "paddle_tag"}
    fp32 = manifest["parity"]["fp32"]
    assert fp32["samples"] == 100 and fp32["max_abs_diff"] <= 1e-4 and fp32["tags_identical"] is True
    for variant in ("fp16", "int8"):  # reported, with report-level sanity bounds
        par = manifest["parity"][variant]
        assert par["metric"] == ("macro_f1" if ckpt.task == "multi_class" else "micro_f1")
        assert par["metric_dygraph"] == pytest.approx(manifest["parity"]["fp16"]["metric_dygraph"])
        assert abs(par["metric_onnx"] - par["metric_dygraph"]) <= 0.2
    assert manifest["parity"]["fp16"]["max_abs_diff"] < 0.05
    assert manifest["parity"]["int8"]["max_abs_diff"] < 3.0


@pytest.mark.parametrize("which", ["mc", "ml"])
def test_every_variant_runs_dynamic_batch_and_sequence_lengths(which, request):
    export = request.getfixturevalue(f"{which}_export")
    ckpt = load_checkpoint(request.getfixturevalue(f"{which}_checkpoint"))
    rng = np.random.default_rng(0)
    tol = {"fp32": 1e-4, "fp16": 0.05, "int8": 3.0}
    for shape in [(1, 5), (7, 40)]:
        ids = rng.integers(1, 21128, size=shape).astype("int64")
        ids[:, 0], ids[:, -1] = 101, 102
        if shape[0] > 1:
            ids[1, 20:] = 0  # a padded row
        with paddle.no_grad():
            expected = ckpt.model(paddle.to_tensor(ids)).numpy()
        for variant, name in FILES.items():
            sess = session(export / name)
            assert [i.name for i in sess.get_inputs()] == ["input_ids"]
            assert [o.name for o in sess.get_outputs()] == ["logits"]
            got = sess.run(None, {"input_ids": ids})[0]
            assert got.shape == (shape[0], len(ckpt.labels)) and got.dtype == np.float32
            assert np.abs(got - expected).max() <= tol[variant], (variant, shape)


def test_exported_tokenizer_and_fp32_model_tag_new_text_like_paddle(mc_export, mc_checkpoint, thucnews_small):
    from paddle_tag.engine.predictor import predict_texts

    ckpt = load_checkpoint(mc_checkpoint)
    texts = [row["text"] for row in read_jsonl(thucnews_small["train"])[-20:]] + ["￥199元 3.5℃ 50% ©2024 iPhone15 →"]
    ids = [enc.ids for enc in Tokenizer.from_file(str(mc_export / "tokenizer.json")).encode_batch(texts)]
    sess = session(mc_export / "model.onnx")
    width = max(map(len, ids))
    batch = np.array([row + [0] * (width - len(row)) for row in ids], dtype="int64")
    logits = sess.run(None, {"input_ids": batch})[0]
    names = json.loads((mc_export / "labels.json").read_text(encoding="utf-8"))
    assert [[names[i]] for i in logits.argmax(1)] == [row["tags"] for row in predict_texts(ckpt, texts)]


def test_graph_is_folded_and_plain_onnx(mc_export):
    model = onnx.load(str(mc_export / "model.onnx"))
    ops = {node.op_type for node in model.graph.node}
    assert "Identity" not in ops and "Constant" not in ops  # folded into initializers
    assert {op.domain for op in model.opset_import} == {""}  # standard operators only
    assert [op.version for op in model.opset_import] == [13]
    quant = onnx.load(str(mc_export / "model_int8.onnx"))
    assert "MatMulInteger" in {node.op_type for node in quant.graph.node}
    sizes = {v: (mc_export / f).stat().st_size for v, f in FILES.items()}
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]


def test_failed_parity_leaves_the_previous_export_untouched(mc_checkpoint, tmp_path, monkeypatch, export_cfg):
    out = tmp_path / "export"
    export_checkpoint(export_cfg(mc_checkpoint, out, Export__variants="fp32", Export__parity_samples=16))
    before = {name: (out / name).read_bytes() for name in files_in(out)}
    real = exporter_mod.paddle_logits
    monkeypatch.setattr(exporter_mod, "paddle_logits", lambda *a, **k: real(*a, **k) + 1e-3)
    with pytest.raises(ParityError, match=r"max \|logit diff\| 0\.001.*allowed 0\.0001"):
        export_checkpoint(export_cfg(mc_checkpoint, out, Export__parity_samples=16))
    assert {name: (out / name).read_bytes() for name in files_in(out)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    monkeypatch.undo()

    def crash(model, export_config, fp32_tables):
        raise ExportError("simulated crash while quantising")

    monkeypatch.setattr(exporter_mod, "DERIVED", {**exporter_mod.DERIVED, "int8": crash})
    with pytest.raises(ExportError, match="simulated crash"):
        export_checkpoint(export_cfg(mc_checkpoint, out, Export__parity_samples=16))
    assert {name: (out / name).read_bytes() for name in files_in(out)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_bad_settings_are_config_errors(mc_checkpoint, tmp_path, export_cfg):
    cases = [({"Export__variants": "fp32,bf16"}, "unknown variant"),
             ({"Export__variants": "fp16"}, "must include fp32"),
             ({"Export__max_seq_len": 65}, "max_position_embeddings=64"), ({"Export__opset": 9}, "Export.opset"),
             ({"Data__eval_path": "null"}, "Data.eval_path"), ({"Data__task": "multi_label"}, "trained for")]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=message):
            export_checkpoint(export_cfg(mc_checkpoint, tmp_path / "x", **extra))
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an export directory"):
        export_checkpoint(export_cfg(mc_checkpoint, tmp_path / "precious"))
    with pytest.raises(ConfigError, match="would replace the checkpoint"):
        export_checkpoint(export_cfg(mc_checkpoint, mc_checkpoint.parent))
    assert (tmp_path / "precious" / "notes.txt").read_text(encoding="utf-8") == "keep me"


def distributions() -> set[tuple[str, str]]:
    return {(d.metadata["Name"], d.version) for d in importlib.metadata.distributions()}


def test_cli_exports_offline_without_installing_anything(ml_checkpoint, tmp_path, export_args):
    """paddle2onnx's default optimiser pip-installs packages (POLYGRAPHY_AUTOINSTALL_DEPS=1): never here."""
    before = distributions()
    env = {**os.environ, "PIP_NO_INDEX": "1", "POLYGRAPHY_AUTOINSTALL_DEPS": "0"}
    out = tmp_path / "export"
    code = ("import runpy, sys, os; sys.argv = sys.argv[1:];"
            "runpy.run_path('tools/export_model.py', run_name='__main__')")
    args = export_args(ml_checkpoint, out, Export__parity_samples=32)
    probe = ("import sys, os, atexit; atexit.register(lambda: print('POLY', 'polygraphy' in sys.modules, "
             "os.environ.get('POLYGRAPHY_AUTOINSTALL_DEPS'), file=sys.stderr))")
    proc = subprocess.run([sys.executable, "-c", probe + "\n" + code, "tools/export_model.py", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "POLY False 0" in proc.stderr  # polygraphy never imported, the variable never flipped
    assert distributions() == before
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["variant", "file", "size"]
    assert [line.split()[0] for line in lines[1:4]] == ["fp32", "fp16", "int8"]
    assert "parity on 32 samples" in lines[-1] and str(out) in lines[-1]
    assert read_manifest(out)["parity"]["fp32"]["tags_identical"] is True


def test_cli_user_errors_and_failed_parity_exit_2(mc_checkpoint, tmp_path, export_args, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("export_model", REPO / "tools" / "export_model.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tool.main, export_args(mc_checkpoint, tmp_path / "e", Export__variants="fp8"))
    assert exit_info.value.code == 2
    assert "error: Export.variants: unknown variant(s) ['fp8']" in capsys.readouterr().err
    real = exporter_mod.paddle_logits
    monkeypatch.setattr(exporter_mod, "paddle_logits", lambda *a, **k: real(*a, **k) - 0.5)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tool.main, export_args(mc_checkpoint, tmp_path / "e", Export__parity_samples=8))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: FP32 ONNX does not reproduce the Paddle model on 8 samples: max |logit diff| 0.5" in err
    assert "Traceback" not in err and not (tmp_path / "e").exists()


def test_copy_of_export_keeps_working_elsewhere(mc_export, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(mc_export, moved)
    assert read_manifest(moved)["files"] == read_manifest(mc_export)["files"]


def test_tokenizer_json_that_disagrees_with_training_stops_the_export(mc_checkpoint, tmp_path, monkeypatch,
                                                                       export_cfg):
    from paddle_tag.data.tokenizer import TextTokenizer

    real_save = TextTokenizer.save
    monkeypatch.setattr(TextTokenizer, "save", lambda self, directory, max_seq_len=None, overlap=0:
                        real_save(self.with_prefix("标题："), directory, max_seq_len, overlap))  # reads other text
    with pytest.raises(ParityError, match="tokenizer.json disagrees with training's tokenizer on"):
        export_checkpoint(export_cfg(mc_checkpoint, tmp_path / "export", Export__parity_samples=16))
    assert not (tmp_path / "export").exists() and not list(tmp_path.iterdir())
