"""Train: ``python tools/train.py -c configs/<area>/<name>.yaml [-o Section.key=value ...]``.

Fine-tunes a tagger, or pretrains an encoder contrastively when the config sets ``Pretrain.method``."""
from __future__ import annotations

import json

from paddle_tag.engine.builder import build_run
from paddle_tag.utils.cli import config_from_args, config_parser, run_cli


def main(argv=None) -> int:
    args = config_parser(__doc__).parse_args(argv)
    trainer = build_run(config_from_args(args))
    if trainer.runtime.is_main and trainer.config.Pretrain.method:
        result = trainer.fit()
        print(json.dumps({k: result[k] for k in ("method", "steps", "best_step", "best", "train_time_s",
                                                 "samples_per_s")}, ensure_ascii=False))
        print(f"outputs in {trainer.out}: metrics.json, curves.png, best/ and last/ (use as Model.pretrained)")
    elif trainer.runtime.is_main:
        result = trainer.fit()
        summary = {k: result[k] for k in ("best_metric", "best_step", "steps", "train_time_s")}
        summary["best"] = {k: round(v, 4) for k, v in (result["best"] or {}).items() if k != "step"}
        if "test" in result:
            summary["test"] = {k: round(v, 4) for k, v in result["test"].items()}
        print(json.dumps(summary, ensure_ascii=False))
        print(f"outputs in {trainer.out}: metrics.json, curves.png, report.txt, best/, last/")
    else:
        trainer.fit()
    return 0


if __name__ == "__main__":
    run_cli(main)
