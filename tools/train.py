"""Train: ``python tools/train.py -c configs/<area>/<name>.yaml [-o Section.key=value ...]``.

Fine-tunes a tagger, or pretrains an encoder contrastively when the config sets ``Pretrain.method``."""
from __future__ import annotations

import json

from paddle_tag.engine.builder import build_run
from paddle_tag.config.cli import config_from_args, config_parser, run_cli


def main(argv=None) -> int:
    args = config_parser(__doc__).parse_args(argv)
    trainer = build_run(config_from_args(args))
    result = trainer.fit()
    if not trainer.runtime.is_main:
        return 0
    summary = {k: result[k] for k in ("kind", "best_metric", "best_step", "steps", "train_time_s", "samples_per_s")}
    for part in ("best", "test"):
        if result.get(part):
            summary[part] = {k: round(v, 4) for k, v in result[part].items() if isinstance(v, float)}
    print(json.dumps(summary, ensure_ascii=False))
    use = "use as Model.pretrained" if trainer.config.Pretrain.method else "tools/eval.py, predict.py, export_model.py"
    print(f"outputs in {trainer.out}: metrics.json, curves.png, best/ and last/ ({use})")
    return 0


if __name__ == "__main__":
    run_cli(main)
