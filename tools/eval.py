"""Evaluate a checkpoint: ``python tools/eval.py -o Global.checkpoint=<dir> [-c cfg] [-o Data.eval_path=...]``.

Without ``-c`` the checkpoint's own config is used; thresholds are the checkpoint's (tuned at training).

A next-item or two-tower checkpoint (``Data.modality: sequence``) is ranked on the valid and test splits of its
interaction log, beside the non-learned baselines (MostPopular, ItemKNN, Markov chain) scored by the same evaluator.

Probe a pretraining checkpoint's frozen encoder (kNN top-1 and a linear probe, fitted on
``Pretrain.knn_train_path``, scored on ``Pretrain.knn_eval_path``)::

    python tools/eval.py --linear-probe -o Global.checkpoint=output/image/simclr_resnet18_fashion/best
        [-c configs/image/simclr_resnet18_fashion.yaml] [--max-items 10000]
"""
from __future__ import annotations

import json
from pathlib import Path

from paddle_tag.config import load_config
from paddle_tag.config.cli import config_parser, run_cli
from paddle_tag.data.sequences import read_interactions
from paddle_tag.engine.builder import load_dataset
from paddle_tag.engine.checkpoint import checkpoint_kind, load_checkpoint, resolve_checkpoint
from paddle_tag.engine.evaluator import evaluate
from paddle_tag.engine.probe import probe_encoder
from paddle_tag.engine.tasks.next_item import load_next_item, rank_baselines, rank_model
from paddle_tag.engine.tasks.two_tower import load_two_tower, profile_ids, rank_two_tower
from paddle_tag.errors import ConfigError
from paddle_tag.metrics import format_report
from paddle_tag.utils.io import atomic_write_json


def main(argv=None) -> int:
    parser = config_parser(__doc__, config_required=False)
    parser.add_argument("--output", help="also write the metrics as JSON to this file")
    parser.add_argument("--linear-probe", action="store_true",
                        help="probe a pretraining checkpoint's frozen encoder: kNN top-1 and a linear probe")
    parser.add_argument("--max-items", type=int, default=0, help="--linear-probe: cap each split (0 = all)")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.override)
    if not config.Global.checkpoint:
        raise ConfigError("tools/eval.py needs -o Global.checkpoint=<checkpoint directory>")
    ckpt_dir = resolve_checkpoint(config.Global.checkpoint)
    if args.linear_probe:
        return probe(args, ckpt_dir)
    if not args.config:  # the checkpoint's resolved config, with the command line on top
        config = load_config(ckpt_dir / "config.yaml", args.override)
    kind = checkpoint_kind(ckpt_dir)
    if kind in ("next_item", "two_tower"):
        return rank(args, config, ckpt_dir, kind)
    ckpt = load_checkpoint(ckpt_dir)
    path = config.Data.eval_path
    if not path:
        raise ConfigError("no data to evaluate: set -o Data.eval_path=<file>")
    if config.Data.task != ckpt.task:
        raise ConfigError(f"Data.task={config.Data.task} but the checkpoint was trained for {ckpt.task}")
    dataset = load_dataset(path, ckpt.config, ckpt.tokenizer, ckpt.labels, "eval")
    metrics, _ = evaluate(ckpt.model, dataset, ckpt.task, ckpt.labels, thresholds=ckpt.thresholds,
                          batch_size=config.Data.eval_batch_size, progress=config.Global.progress)
    print(format_report(metrics["per_class"]))
    flat = {k: v for k, v in metrics.items() if k != "per_class"}
    print(json.dumps({"checkpoint": str(ckpt_dir), "data": path, **flat}, ensure_ascii=False))
    if args.output:
        atomic_write_json(args.output, {"checkpoint": str(ckpt_dir), "data": path, **metrics})
    return 0


def rank(args, config, ckpt_dir: Path, kind: str) -> int:
    data = read_interactions(config.Data.train_path)
    if kind == "two_tower":
        model, vocab = load_two_tower(ckpt_dir, data)
        profiles = profile_ids(data.users, vocab)
        scores = {part: rank_two_tower(model, data, profiles, config, part) for part in ("valid", "test")}
    else:
        model = load_next_item(ckpt_dir, data)
        scores = {part: rank_model(model, data, config, part) for part in ("valid", "test")}
    result = {"checkpoint": str(ckpt_dir), "data": config.Data.train_path, **scores,
              "baselines": rank_baselines(data, config)}
    print(json.dumps(result, ensure_ascii=False))
    if args.output:
        atomic_write_json(args.output, result)
    return 0


def probe(args, ckpt_dir: Path) -> int:
    if not args.config:  # a pretraining run writes its config.yaml next to best/ and last/
        run_config = ckpt_dir.parent / "config.yaml"
        if not run_config.is_file():
            raise ConfigError(f"no config.yaml next to {ckpt_dir}: pass the pretraining config with -c")
        args.config = str(run_config)
    config = load_config(args.config, args.override)
    pre = config.Pretrain
    if not (pre.knn_train_path and pre.knn_eval_path):
        raise ConfigError("--linear-probe needs labelled data: -o Pretrain.knn_train_path=... "
                          "-o Pretrain.knn_eval_path=...")
    result = probe_encoder(config, str(ckpt_dir), pre.knn_train_path, pre.knn_eval_path, args.max_items)
    print(json.dumps(result, ensure_ascii=False))
    if args.output:
        atomic_write_json(args.output, result)
    return 0


if __name__ == "__main__":
    run_cli(main)
