"""Export a checkpoint: static graph → ONNX FP32 (+ FP16, INT8) → tokenizer.json → parity → manifest.

A ``next_item`` checkpoint is exported as a recommender instead (:mod:`paddle_tag.export.recommender`).

Everything is written into a hidden sibling of ``Export.output_dir`` and swapped in only when it is
complete and FP32 parity holds (:func:`paddle_tag.utils.io.replace_directory`): a failed export leaves
the previous one untouched.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import onnx
import paddle

import paddle_tag
from paddle_tag.config import Config
from paddle_tag.config.schema import ExportConfig
from paddle_tag.data.text_inputs import TextInputSpec
from paddle_tag.data.tokenizer import TOKENIZER_FILE
from paddle_tag.engine.checkpoint import Checkpoint, checkpoint_kind, load_checkpoint, resolve_checkpoint
from paddle_tag.errors import ConfigError, ExportError
from paddle_tag.export.manifest import MANIFEST_FILE, TASK_ACTIVATION, format_version, io_spec, write_manifest
from paddle_tag.export.onnx_convert import finalize_fp32, paddle_to_onnx, session
from paddle_tag.export.parity import compare, load_parity_data, onnx_logits, paddle_logits, require_fp32
from paddle_tag.export.recommender import load_recommender, write_recommender_export
from paddle_tag.export.static import save_static
from paddle_tag.export.variants import FILES, to_fp16, to_int8
from paddle_tag.utils.io import replace_directory, sha256_file

STATIC_DIR = "paddle"
# variants built from the FP32 model, with their Export.* settings and the shapes of the tables kept FP32
DERIVED: dict[str, Callable[[onnx.ModelProto, ExportConfig, list[tuple[int, ...]]], onnx.ModelProto]] = {
    "fp16": lambda model, exp, tables: to_fp16(model),
    "int8": lambda model, exp, tables: to_int8(model, exp.int8_keep_fp32, tables),
}


def export_checkpoint(config: Config) -> Path:
    """Export ``Global.checkpoint`` into ``Export.output_dir``; return that directory.

    Raises :class:`~paddle_tag.errors.ConfigError` for bad settings, :class:`~paddle_tag.errors.ParityError`
    if FP32 ONNX does not reproduce the Paddle model (nothing is written then) and
    :class:`~paddle_tag.errors.ExportError` if a conversion step fails.
    """
    if not config.Global.checkpoint:
        raise ConfigError("export needs -o Global.checkpoint=<checkpoint directory>")
    ckpt_dir = resolve_checkpoint(config.Global.checkpoint)
    out = Path(config.Export.output_dir)
    if checkpoint_kind(ckpt_dir) == "next_item":
        check_output_dir(out, ckpt_dir)
        source = load_recommender(config, ckpt_dir)
        with replace_directory(out) as tmp:
            write_recommender_export(tmp, config, source, versions())
        return out
    ckpt = load_checkpoint(ckpt_dir)
    settings = check_settings(config, ckpt)
    check_output_dir(out, ckpt_dir)
    with replace_directory(out) as tmp:
        write_export(tmp, config, ckpt, **settings)
    return out


def check_settings(config: Config, ckpt: Checkpoint) -> dict[str, Any]:
    """Validate ``Export.*`` against the checkpoint; return ``variants`` and the :class:`TextInputSpec` of the
    export (the checkpoint's, with ``Export.max_seq_len`` when set). The section's own ranges (variants, opset,
    fp32_atol, parity_samples) were checked when the config was built (:class:`ExportConfig`)."""
    if ckpt.tokenizer is None:
        raise ConfigError(f"{ckpt.directory} is an image tagger: ONNX export handles text taggers only")
    exp = config.Export
    if config.Data.task != ckpt.task:
        raise ConfigError(f"Data.task={config.Data.task} but the checkpoint was trained for {ckpt.task}")
    max_seq_len = exp.max_seq_len if exp.max_seq_len is not None else config.Data.max_seq_len
    max_position = int(getattr(ckpt.model.encoder.config, "max_position_embeddings", max_seq_len))
    if not 3 <= max_seq_len <= max_position:
        raise ConfigError(f"Export.max_seq_len={max_seq_len} must be between 3 and the model's "
                          f"max_position_embeddings={max_position}")
    if not config.Data.eval_path or not Path(config.Data.eval_path).is_file():
        raise ConfigError(f"export parity needs labelled data: Data.eval_path={config.Data.eval_path!r} "
                          "is not a file (set -o Data.eval_path=<file>)")
    if ckpt.tokenizer.pad_token_id != ckpt.model.pad_id:
        raise ExportError(f"tokenizer pad id {ckpt.tokenizer.pad_token_id} != model pad id {ckpt.model.pad_id}")
    spec = TextInputSpec.from_config(dataclasses.replace(config.Data, max_seq_len=max_seq_len), config.Model)
    if spec.long_text == "error":  # deploy/ cannot refuse a request per text; it truncates and says so
        spec = dataclasses.replace(spec, long_text="truncate")
    if (ckpt.model.wide is not None) != bool(spec.wide_max_chars):
        raise ExportError(f"{ckpt.directory}: the model {'has' if ckpt.model.wide is not None else 'has no'} wide "
                          f"part but the config says Model.wide={config.Model.wide}")
    return {"variants": list(exp.variants), "spec": spec}


def check_output_dir(out: Path, ckpt_dir: Path) -> None:
    """Refuse to replace a directory that is not a previous export (or that holds the checkpoint)."""
    resolved, ckpt = out.resolve(), ckpt_dir.resolve()
    if resolved == ckpt or resolved in ckpt.parents:
        raise ConfigError(f"Export.output_dir={out} would replace the checkpoint {ckpt_dir}; choose another folder")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).is_file())):
        raise ConfigError(f"Export.output_dir={out} exists and is not an export directory (no {MANIFEST_FILE}); "
                          "refusing to replace it")


def write_export(tmp: Path, config: Config, ckpt: Checkpoint, variants: list[str], spec: TextInputSpec) -> None:
    """Write every export file into ``tmp`` (the caller swaps it into place)."""
    exp, task, pad_id = config.Export, ckpt.task, ckpt.model.pad_id
    ckpt.tokenizer.save(tmp, spec.max_seq_len, spec.window_overlap if spec.windowed else 0)
    data = load_parity_data(config.Data.eval_path, config.Data.format, ckpt.labels, task, exp.parity_samples,
                            tmp / TOKENIZER_FILE, ckpt.tokenizer, spec)
    ckpt.labels.save(tmp / "labels.json")
    inputs = ("input_ids", "char_ids") if ckpt.model.wide is not None else ("input_ids",)
    model_json, params = save_static(ckpt.model, tmp / STATIC_DIR, windowed=spec.windowed)
    fp32 = finalize_fp32(paddle_to_onnx(model_json, params, exp.opset), inputs)
    reference = paddle_logits(ckpt.model, data)
    parity: dict[str, dict[str, Any]] = {}
    wide_table = [tuple(ckpt.model.wide.table.weight.shape)] if ckpt.model.wide is not None else []
    for variant in variants:
        model = fp32 if variant == "fp32" else DERIVED[variant](fp32, exp, wide_table)
        path = tmp / FILES[variant]
        onnx.save(model, str(path))
        logits = onnx_logits(session(path), data)
        parity[variant] = compare(reference, logits, task, ckpt.thresholds, data.targets,
                                  with_metric=variant != "fp32")
        parity[variant]["multi_window_samples"] = data.multi_window
        if variant == "fp32":
            require_fp32(parity["fp32"], exp.fp32_atol)
    thresholds = None if ckpt.thresholds is None else {n: float(t) for n, t in zip(ckpt.labels.names, ckpt.thresholds)}
    windows = {"overlap": spec.window_overlap, "max_windows": spec.max_windows} if spec.windowed else None
    wide = None if ckpt.model.wide is None else {**ckpt.model.wide.config(), "max_chars": spec.wide_max_chars}
    version = format_version(windows, wide)
    write_manifest(tmp, {
        "format_version": version, "task": task, "labels": list(ckpt.labels.names), "thresholds": thresholds,
        "activation": TASK_ACTIVATION[task], "max_seq_len": int(spec.max_seq_len), "pad_id": int(pad_id),
        **io_spec(len(ckpt.labels), windowed=spec.windowed, wide=wide is not None),
        "tokenizer": {"file": TOKENIZER_FILE},
        "models": {v: {"file": FILES[v]} for v in variants}, "parity": parity,
        "source": {"checkpoint": str(ckpt.directory.resolve()),
                   "config_sha256": sha256_file(ckpt.directory / "config.yaml")},
        "versions": versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({"windows": windows, "wide": wide} if version >= 2 else {}),
    })


def versions() -> dict[str, str]:
    """Versions of the stack that produced the export."""
    import onnxruntime
    import paddle2onnx

    return {"paddle": paddle.__version__, "paddle2onnx": paddle2onnx.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "paddle_tag": paddle_tag.__version__}
