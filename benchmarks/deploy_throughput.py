"""deploy/ throughput side by side: exported taggers on their own test texts, through the Paddle-free runner.

    python benchmarks/deploy_throughput.py --model titles=output/export/thucnews_e5:data/thucnews/test.jsonl
        --model poems=output/export/poetry_e5_frozen_wide:data/poetry/test.jsonl
        [--precisions fp32 int8] [--threads 2] [--batch-size 32] [--rounds 3] [--json out.json]

What a user of ``deploy.predict`` / ``deploy.serve`` gets: ``deploy.predictor.Predictor.predict`` end to end —
tokenising (and, for a windowed model, cutting windows; for a wide model, reading code points), ONNX Runtime
on the CPU with ``--threads`` intra-op threads, activation and tag selection — on every text of each model's
file, in batches of ``--batch-size`` (texts/s and tokens/s; tokens counted as the model reads them, every
window's) and one text at a time (latency p50 / p99 over the first ``--latency-calls`` texts). Each
(model, precision) runs ``--rounds`` times, interleaved with the others, and reports its median round;
ratios are to the first row. Prints one Markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.predictor import Predictor  # noqa: E402  (deploy/ is imported from the repository root)


def read_texts(path: str) -> list[str]:
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                texts.append(json.loads(line)["text"] if path.endswith((".jsonl", ".json"))
                             else line.rstrip("\n").split("\t", 1)[-1])
    return texts


def tokens_read(predictor: Predictor, texts: list[str]) -> int:
    """Real (non-pad) tokens the model reads for ``texts``: every window's."""
    rows, _ = predictor.tokenizer.windows(texts)
    return sum(len(window) for row in rows for window in row)


def measure(predictor: Predictor, texts: list[str], batch_size: int, latency_calls: int) -> dict:
    started = time.perf_counter()
    predictor.predict(texts, batch_size=batch_size)
    batch_seconds = time.perf_counter() - started
    latencies = []
    for text in texts[:latency_calls]:
        started = time.perf_counter()
        predictor.predict([text])
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {"texts_per_s": len(texts) / batch_seconds, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=EXPORT_DIR:DATA_FILE")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    runs = []
    for spec in args.model:
        name, _, rest = spec.partition("=")
        export, _, data = rest.partition(":")
        texts = read_texts(data)
        for precision in args.precisions:
            predictor = Predictor(export, "cpu", precision, threads=args.threads, max_batch_size=args.batch_size)
            runs.append({"name": name, "export": export, "data": data, "precision": precision, "texts": texts,
                         "predictor": predictor, "tokens": tokens_read(predictor, texts), "rounds": []})
    for _ in range(args.rounds):
        for run in runs:
            run["rounds"].append(measure(run["predictor"], run["texts"], args.batch_size, args.latency_calls))
    print(f"`CPU ({platform.machine()}), {args.threads} ORT threads, {date.today()}; deploy.predictor.Predictor, "
          f"batch {args.batch_size}; median of {args.rounds} interleaved rounds; ratios to the first row`\n")
    print("| model | precision | texts | tokens read / text | texts/s | tokens/s | ratio (texts/s) | "
          "batch 1 p50 | batch 1 p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows, first = [], None
    for run in runs:
        best = sorted(run["rounds"], key=lambda r: r["texts_per_s"])[len(run["rounds"]) // 2]
        per_text = run["tokens"] / len(run["texts"])
        first = first or best["texts_per_s"]
        rows.append({"name": run["name"], "precision": run["precision"], "texts": len(run["texts"]),
                     "tokens_per_text": per_text, **best})
        print(f"| {run['name']} | {run['precision']} | {len(run['texts']):,} | {per_text:.1f} | "
              f"{best['texts_per_s']:.1f} | {best['texts_per_s'] * per_text:,.0f} | "
              f"{best['texts_per_s'] / first:.2f}× | {best['p50_ms']:.1f} ms | {best['p99_ms']:.1f} ms |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
