"""Tag texts, or recommend items after histories, with an exported model; prints one JSON line per input.

A tagger: ``python -m deploy.predict --model-dir D --text 央行宣布降准 [--text ...]`` or ``--input texts.jsonl``
(one JSON object with a ``"text"`` string per line; other keys are ignored; blank lines skipped).
Output: ``{"text", "tags", "scores", "truncated"}`` per line, in input order.

A recommender: ``--history '["Toy Story (1995)", "Aladdin (1992)"]' [--history ...]`` (a JSON list of item ids,
oldest first: ids may hold commas; ``'[]'`` is the empty history) or ``--input histories.jsonl``
(``{"history": [item id, ...]}`` per line), ``--top-k`` items each (default 10). Output: ``{"history", "items",
"unknown", "fallback", "truncated"}`` per line, as ``POST /recommend`` answers.
Errors: ``error: ...`` on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy import DeployError
from deploy.cli import add_model_args, positive, run_cli, setup_logging
from deploy.export_dir import RECOMMENDER, manifest_kind
from deploy.http_inputs import DEFAULT_K
from deploy.predictor import Predictor
from deploy.recommender import Recommender


def read_jsonl(path: str, key: str, kind: type, what: str) -> list:
    """The ``key`` values (of type ``kind``) of a JSONL file's objects; :class:`DeployError` naming ``file:line``
    on the first bad line."""
    file = Path(path)
    if not file.is_file():
        raise DeployError(f"{file}: input file not found")
    values = []
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
                if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
                    raise DeployError(f'{where}: expected an object with a "{key}" {what}')
                values.append(obj[key])
        except UnicodeDecodeError as exc:
            raise DeployError(f"{file}: not UTF-8: {exc}") from None
    return values


def parse_history(value: str, index: int) -> list:
    """One ``--history`` value: a JSON list (of item id strings, checked by the caller)."""
    try:
        history = json.loads(value)
    except json.JSONDecodeError as exc:
        raise DeployError(f"--history {index + 1} is not JSON ({exc.msg}); give a list such as '[\"id 1\", \"id 2\"]'")
    if not isinstance(history, list):
        raise DeployError(f"--history {index + 1} must be a JSON list of item ids, got {type(history).__name__}")
    return history


def recommend(args: argparse.Namespace) -> list[dict]:
    """The answers of a recommender export to ``--history`` / ``--input``, one per history, in order."""
    if args.text or bool(args.history) == bool(args.input):
        raise DeployError("a recommender export takes either --history (one or more) or --input <file.jsonl> "
                          "of {\"history\": [...]} objects")
    histories = ([parse_history(h, i) for i, h in enumerate(args.history)] if args.history
                 else read_jsonl(args.input, "history", list, "list of item ids"))
    for i, history in enumerate(histories):
        if not all(isinstance(item, str) for item in history):
            raise DeployError(f"history {i + 1}: item ids must be strings")
    if args.trt:
        raise DeployError("--trt serves taggers; a recommender's user encoder runs on CUDA or the CPU")
    model = Recommender(args.model_dir, args.device, args.precision, args.threads, gpu_id=args.gpu_id,
                        max_batch_size=args.batch_size)
    k = args.top_k or DEFAULT_K
    if k > model.num_items:
        raise DeployError(f"--top-k {k} exceeds the catalogue size {model.num_items}")
    rows = []
    for start in range(0, len(histories), args.batch_size):
        batch = histories[start:start + args.batch_size]
        answers = model.predict([{"history": history, "k": k} for history in batch])
        rows.extend({"history": history, **answer} for history, answer in zip(batch, answers))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--text", action="append", default=[], help="a text to tag (repeatable)")
    parser.add_argument("--history", action="append", default=[],
                        help="recommender: a JSON list of item ids, oldest first (repeatable)")
    parser.add_argument("--input", help="a .jsonl file of {\"text\": ...} (or {\"history\": [...]}) objects")
    parser.add_argument("--batch-size", type=positive, default=32, help="texts per model call")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8")  # JSON lines are UTF-8 whatever the locale
    if manifest_kind(args.model_dir) == RECOMMENDER:
        for row in recommend(args):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()
        return 0
    if args.history:
        raise DeployError("--history is for a recommender export; this one is a tagger (use --text)")
    if bool(args.text) == bool(args.input):
        raise DeployError("give either --text (one or more) or --input <file.jsonl>")
    texts = args.text or read_jsonl(args.input, "text", str, "string")
    where = "--text" if args.text else args.input
    for i, text in enumerate(texts):
        if not text.strip():
            raise DeployError(f"{where}: text {i + 1} is empty")
    predictor = Predictor(args.model_dir, args.device, args.precision, args.threads, trt=args.trt,
                          gpu_id=args.gpu_id, top_k=args.top_k or 5, max_batch_size=args.batch_size,
                          trt_cache_dir=args.trt_cache)
    for text, row in zip(texts, predictor.predict(texts, batch_size=args.batch_size)):
        out.write(json.dumps({"text": text, **row}, ensure_ascii=False) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
