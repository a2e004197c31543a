"""Tag texts with an exported model; prints one JSON line per text.

``python -m deploy.predict --model-dir D --text 央行宣布降准 [--text ...]`` or ``--input texts.jsonl``
(one JSON object with a ``"text"`` string per line; other keys are ignored; blank lines skipped).
Output: ``{"text", "tags", "scores", "truncated"}`` per line, in input order. Errors: ``error: ...``
on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy import DeployError
from deploy.cli import add_model_args, positive, run_cli, setup_logging
from deploy.predictor import Predictor


def read_texts(path: str) -> list[str]:
    """Texts of a JSONL file; :class:`DeployError` naming ``file:line`` on the first bad line."""
    file = Path(path)
    if not file.is_file():
        raise DeployError(f"{file}: input file not found")
    texts = []
    with file.open(encoding="utf-8") as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                where = f"{file}:{number}"
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DeployError(f"{where}: invalid JSON: {exc.msg}") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise DeployError(f'{where}: expected an object with a "text" string')
                texts.append(obj["text"])
        except UnicodeDecodeError as exc:
            raise DeployError(f"{file}: not UTF-8: {exc}") from None
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--text", action="append", default=[], help="a text to tag (repeatable)")
    parser.add_argument("--input", help="a .jsonl file of {\"text\": ...} objects")
    parser.add_argument("--batch-size", type=positive, default=32, help="texts per model call")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if bool(args.text) == bool(args.input):
        raise DeployError("give either --text (one or more) or --input <file.jsonl>")
    texts = args.text or read_texts(args.input)
    where = "--text" if args.text else args.input
    for i, text in enumerate(texts):
        if not text.strip():
            raise DeployError(f"{where}: text {i + 1} is empty")
    predictor = Predictor(args.model_dir, args.device, args.precision, args.threads, trt=args.trt,
                          gpu_id=args.gpu_id, top_k=args.top_k, max_batch_size=args.batch_size,
                          trt_cache_dir=args.trt_cache)
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8")  # JSON lines are UTF-8 whatever the locale
    for text, row in zip(texts, predictor.predict(texts, batch_size=args.batch_size)):
        out.write(json.dumps({"text": text, **row}, ensure_ascii=False) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
