"""Export a checkpoint to ONNX (FP32, FP16, INT8) + tokenizer.json + manifest.json, checked against Paddle.

``python tools/export_model.py -o Global.checkpoint=<dir> -o Export.output_dir=<dir> [-c cfg] [-o Export.…]``

Without ``-c`` the checkpoint's own config is used (its ``Data.eval_path`` gives the parity samples).
An export whose FP32 model differs from Paddle by more than ``Export.fp32_atol`` is not written (exit 2).
A ``next_item`` checkpoint (SASRec, GRU4Rec) is exported as a recommender: user encoder ONNX (FP32) + item table
+ items + popularity, checked on the test split of its ``Data.train_path`` (same top-10 items for >= 99 % of users).
"""
from __future__ import annotations

import time

from paddle_tag.config import load_config
from paddle_tag.engine.checkpoint import resolve_checkpoint
from paddle_tag.errors import ConfigError
from paddle_tag.export import export_checkpoint, read_manifest
from paddle_tag.config.cli import config_parser, run_cli


def recommender_summary(out, manifest: dict, seconds: float) -> str:
    """One line: the encoder's size, max |user vector diff| vs Paddle, and the top-10 agreement."""
    par, model = manifest["parity"]["fp32"], manifest["model"]
    size = (out / manifest["models"]["fp32"]["file"]).stat().st_size / 2**20
    return (f"recommender {model['name']} ({model['num_items']} items, hidden {model['hidden']}, "
            f"last {model['max_len']} items): user encoder fp32 {size:.2f} MB, "
            f"max |user vector diff| {par['max_abs_diff']:.2e}, same top-10 for {100 * par['top10_agreement']:.2f} % "
            f"of {par['users']} {par['split']} users; exported in {seconds:.1f} s to {out}")


def summary(out, seconds: float) -> str:
    """A table of the exported variants: file size, max |logit diff| vs Paddle, metric Paddle → ONNX."""
    manifest = read_manifest(out)
    if manifest.get("kind") == "recommender":
        return recommender_summary(out, manifest, seconds)
    rows = [("variant", "file", "size MB", "max |diff|", "same tags", "metric (paddle → onnx)")]
    for variant, entry in manifest["models"].items():
        par = manifest["parity"][variant]
        size = (out / entry["file"]).stat().st_size / 2**20
        metric = (f"{par['metric']} {par['metric_dygraph']:.4f} → {par['metric_onnx']:.4f}" if "metric" in par
                  else "(identical tags required)")
        rows.append((variant, entry["file"], f"{size:.2f}", f"{par['max_abs_diff']:.2e}",
                     f"{100 * par['tags_agreement']:.1f} %", metric))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    samples, windows = manifest["parity"]["fp32"]["samples"], manifest["parity"]["fp32"]["multi_window_samples"]
    return "\n".join([*lines, f"parity on {samples} samples ({windows} read as several windows); "
                              f"exported in {seconds:.1f} s to {out}"])


def main(argv=None) -> int:
    parser = config_parser(__doc__, config_required=False)
    args = parser.parse_args(argv)
    config = load_config(args.config, args.override)
    if not config.Global.checkpoint:
        raise ConfigError("tools/export_model.py needs -o Global.checkpoint=<checkpoint directory>")
    if not args.config:  # the checkpoint's resolved config, with the command line on top
        config = load_config(resolve_checkpoint(config.Global.checkpoint) / "config.yaml", args.override)
    started = time.perf_counter()
    out = export_checkpoint(config)
    print(summary(out, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    run_cli(main)
