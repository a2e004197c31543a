"""Tag texts with a checkpoint; prints JSON lines ``{"text", "tags", "scores"}``.

``python tools/predict.py -o Global.checkpoint=<dir> --text 新赛季 --text ...`` or ``--input file.jsonl``
(objects with a ``"text"`` key; labels, if present, are ignored).
"""
from __future__ import annotations

import json
import sys

from paddle_tag.config import load_config
from paddle_tag.data.readers import read_examples
from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.predictor import predict_texts
from paddle_tag.errors import ConfigError
from paddle_tag.config.cli import config_parser, run_cli


def main(argv=None) -> int:
    parser = config_parser(__doc__, config_required=False)
    parser.add_argument("--text", action="append", default=[], help="a text to tag (repeatable)")
    parser.add_argument("--input", help="a .jsonl (or .tsv) file of texts")
    parser.add_argument("--top-k", type=int, default=5, help="how many tag scores to print per text")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.override)
    if not config.Global.checkpoint:
        raise ConfigError("tools/predict.py needs -o Global.checkpoint=<checkpoint directory>")
    if bool(args.text) == bool(args.input):
        raise ConfigError("give either --text (one or more) or --input <file>")
    texts = args.text or [ex.text for ex in read_examples(args.input, require_labels=False)]
    ckpt = load_checkpoint(config.Global.checkpoint)
    for row in predict_texts(ckpt, texts, config.Data.eval_batch_size, args.top_k):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
