"""CPU inference: Paddle dygraph vs Paddle Inference (oneDNN) vs ONNX Runtime FP32 / INT8 / FP16, one table.

    python benchmarks/inference_cpu.py --checkpoint output/bench/thucnews/best --export output/export/thucnews
        [--threads 2] [--data data/thucnews/test.jsonl] [--extra NAME=model.onnx ...] [--json out.json]

The same model and the same inputs for every engine: the real test titles, tokenised once with the
export's ``tokenizer.json`` (ids equal to PaddleNLP's; the export checks it) and right-padded with the
pad id, on ``--threads`` CPU threads everywhere (``OMP_NUM_THREADS`` for dygraph,
``set_cpu_math_library_num_threads`` for Paddle Inference, ``intra_op_num_threads`` for ONNX Runtime).

- batch 1: one title per call, in file order (each at its own length): latency p50 / p99;
- batch 32: the whole file in batches of 32, each padded to its longest title: texts/s;
- batch 32 × 128: 32 titles padded to 128 tokens (the case issue #4 quotes): texts/s;
- macro-F1 of each engine's arg-max on the whole file (from the batch-32 pass).

Each engine runs in its own process (running a Paddle Inference predictor slows dygraph in the same
process 1.6×), one at a time, in ``--rounds`` interleaved rounds (every engine, then every engine again)
so that a slow spell of a shared machine hits all of them alike: latencies are pooled over the rounds,
throughput is the median round. A full run of the five engines takes about 2–3 minutes on 2 cores.

Every speed column is followed by its ratio to dygraph and to Paddle Inference + oneDNN (> 1 = faster).
Prints one Markdown table; ``--json`` also writes the raw figures.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="paddle_tag checkpoint directory (dygraph)")
    parser.add_argument("--export", required=True, help="export directory (tools/export_model.py)")
    parser.add_argument("--data", default="data/thucnews/test.jsonl", help="labelled JSONL/TSV file")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every engine")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--padded-len", type=int, default=128, help="sequence length of the padded case")
    parser.add_argument("--latency-calls", type=int, default=300, help="batch-1 inputs: the first N titles")
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="seconds per engine and measurement, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds")
    parser.add_argument("--engines", default="dygraph,paddle_inference,ort_fp32,ort_int8,ort_fp16",
                        help="comma list (subset of the default)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=FILE.onnx",
                        help="another ONNX model to time with ORT (same input/output), e.g. an experiment")
    parser.add_argument("--json", help="write the raw figures here")
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # before numpy/paddle start their thread pools
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np

LABELS = {"dygraph": "Paddle dygraph (Tagger)", "paddle_inference": "Paddle Inference + oneDNN FP32",
          "ort_fp32": "ONNX Runtime FP32", "ort_int8": "ONNX Runtime INT8", "ort_fp16": "ONNX Runtime FP16"}


def pad(rows: list[list[int]], pad_id: int, length: int | None = None) -> np.ndarray:
    width = length or max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row[:width]
    return out


# ---------------------------------------------------------------- engines: name → callable(ids) -> logits
def dygraph_engine(checkpoint: str, threads: int):
    import paddle

    from paddle_tag.engine.checkpoint import load_checkpoint

    paddle.set_device("cpu")
    model = load_checkpoint(checkpoint).model
    model.eval()

    def run(ids: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(ids)).numpy()
    return run


def paddle_inference_engine(export: str, threads: int):
    import paddle.inference as pi

    config = pi.Config(str(Path(export) / "paddle" / "model.json"), str(Path(export) / "paddle" / "model.pdiparams"))
    config.disable_gpu()
    config.enable_mkldnn()  # oneDNN kernels and fusions
    config.set_cpu_math_library_num_threads(threads)
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(ids: np.ndarray) -> np.ndarray:
        inp.reshape(list(ids.shape))
        inp.copy_from_cpu(ids)
        predictor.run()
        return out.copy_to_cpu()
    return run


def ort_engine(path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if session.get_providers() != ["CPUExecutionProvider"]:
        raise RuntimeError(f"{path}: unexpected providers {session.get_providers()}")
    name = session.get_inputs()[0].name

    def run(ids: np.ndarray) -> np.ndarray:
        return session.run(None, {name: ids})[0]
    return run


# ---------------------------------------------------------------- measurements
def latency_ms(run, inputs: list[np.ndarray], seconds: float) -> list[float]:
    """Per-call milliseconds, one input per call, for ``seconds`` (at least 30 calls, at most all inputs)."""
    times, started = [], time.perf_counter()
    for x in inputs:
        t = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - started > seconds and len(times) >= 30:
            break
    return times


def texts_per_s(run, batches: list[np.ndarray], seconds: float) -> float:
    """Texts per second over whole passes of ``batches``, for at least ``seconds``."""
    texts, started = 0, time.perf_counter()
    while texts == 0 or time.perf_counter() - started < seconds:
        for x in batches:
            run(x)
            texts += len(x)
    return texts / (time.perf_counter() - started)


def build_engine(kind: str, path: str, threads: int):
    if kind == "dygraph":
        return dygraph_engine(path, threads)
    if kind == "paddle_inference":
        return paddle_inference_engine(path, threads)
    return ort_engine(path, threads)


def engine_worker(conn, kind: str, path: str, threads: int, singles, batches, padded) -> None:
    """One engine in its own process (Paddle Inference leaves thread-local oneDNN state that slows dygraph
    in the same process 1.6×; separate processes keep every engine as it runs alone). Answers the parent's
    commands: the logits of ``batches``, then timing rounds, until ``None``."""
    run = build_engine(kind, path, threads)
    for x in singles[:20] + batches[:2] + padded:  # warm-up: every shape family once
        run(x)
    conn.send(np.concatenate([run(x) for x in batches]))
    while (share := conn.recv()) is not None:
        conn.send((latency_ms(run, singles, share), texts_per_s(run, batches, share), texts_per_s(run, padded, share)))


def macro_f1(logits: np.ndarray, targets: np.ndarray) -> float:
    from paddle_tag.metrics import compute_metrics

    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return float(compute_metrics("multi_class", targets, probs)["macro_f1"])


def main() -> None:
    args = ARGS
    from paddle_tag.data.labels import LabelSet
    from paddle_tag.data.readers import read_examples
    from paddle_tag.export.manifest import read_manifest
    from tokenizers import Tokenizer

    export = Path(args.export)
    manifest = read_manifest(export)
    if manifest["task"] != "multi_class":
        raise SystemExit("error: this benchmark reports macro-F1 of a multi-class export")
    pad_id = int(manifest["pad_id"])
    labels = LabelSet.load(export / "labels.json")
    examples = read_examples(args.data)
    tokenizer = Tokenizer.from_file(str(export / manifest["tokenizer"]["file"]))
    tokenizer.no_padding()
    ids = [enc.ids for enc in tokenizer.encode_batch([e.text for e in examples])]  # once, for every engine
    targets = labels.encode(examples, "multi_class")
    bs = args.batch_size
    singles = [pad([row], pad_id) for row in ids[:args.latency_calls]]
    batches = [pad(ids[i:i + bs], pad_id) for i in range(0, len(ids), bs)]
    padded = [pad(ids[:bs], pad_id, args.padded_len)]
    lengths = [len(r) for r in ids]

    specs = {  # engine → (kind, path)
        "dygraph": ("dygraph", args.checkpoint),
        "paddle_inference": ("paddle_inference", str(export)),
        **{f"ort_{v}": ("ort", str(export / manifest["models"][v]["file"])) for v in ("fp32", "int8", "fp16")},
    }
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    for extra in args.extra:
        name, _, path = extra.partition("=")
        specs[name] = ("ort", os.path.abspath(path))
        LABELS[name] = f"ONNX Runtime {name}"
        names.append(name)

    # One process per engine, all started and warmed up first; then interleaved rounds (engine A, B, …,
    # then again), so that a slow spell of this shared VM hits every engine alike. Per engine: latencies
    # pooled over the rounds, throughput the median round. Only one engine runs at a time.
    ctx = multiprocessing.get_context("spawn")
    workers, rows = {}, {}
    for name in names:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=engine_worker, args=(child, *specs[name], args.threads, singles, batches, padded),
                           daemon=True)
        proc.start()
        workers[name] = (proc, parent)
        rows[name] = {"engine": LABELS.get(name, name), "macro_f1": macro_f1(parent.recv(), targets)}
    lat = {n: [] for n in names}
    b32 = {n: [] for n in names}
    b128 = {n: [] for n in names}
    share = args.seconds / args.rounds
    for round_ in range(args.rounds):
        for name in names:
            time.sleep(0.3)  # let the previous engine's OpenMP / ORT worker threads stop spinning
            workers[name][1].send(share)
            ms, tps32, tps128 = workers[name][1].recv()
            lat[name] += ms
            b32[name].append(tps32)
            b128[name].append(tps128)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    for proc, conn in workers.values():
        conn.send(None)
        proc.join(timeout=30)
    for name in names:
        ms = np.asarray(lat[name])
        rows[name]["b1"] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                            "calls": len(ms)}
        rows[name]["b32"] = {"texts_per_s": float(np.median(b32[name])), "rounds": b32[name]}
        tps = float(np.median(b128[name]))
        rows[name]["b32x128"] = {"texts_per_s": tps, "ms_per_batch": 1e3 * bs / tps, "rounds": b128[name]}
        print(f"{name}: {json.dumps(rows[name])}", file=sys.stderr, flush=True)

    print_table(rows, args, lengths)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "threads": args.threads, "date": str(date.today()),
                                               "cpus": os.cpu_count(), "machine": platform.processor()}, indent=2))


def print_table(rows: dict, args, lengths: list[int]) -> None:
    dy, pi = rows.get("dygraph"), rows.get("paddle_inference")

    def ratio(value: float, ref: dict | None, key: str, field: str, faster_is_lower: bool) -> str:
        if ref is None:
            return "–"
        base = ref[key][field]
        return f"{(base / value if faster_is_lower else value / base):.2f}×"

    print(f"CPU, {args.threads} threads, {os.cpu_count()} cores, {date.today()}; {len(lengths)} titles of "
          f"{os.path.relpath(args.data)} ({min(lengths)}–{max(lengths)} tokens, mean {np.mean(lengths):.1f}); "
          "ratios: speed-up over dygraph / over Paddle Inference + oneDNN")
    print()
    print("| engine | batch 1 p50 | batch 1 p99 | p50 ratio (dy / PI) | batch 32 texts/s | ratio (dy / PI) | "
          f"32 × {args.padded_len} texts/s | ratio (dy / PI) | macro-F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    dy_f1 = dy["macro_f1"] if dy else None
    for r in rows.values():
        f1 = f"{r['macro_f1']:.4f}" + (f" ({100 * (r['macro_f1'] - dy_f1):+.2f})" if dy_f1 is not None else "")
        print(f"| {r['engine']} | {r['b1']['p50_ms']:.2f} ms | {r['b1']['p99_ms']:.2f} ms | "
              f"{ratio(r['b1']['p50_ms'], dy, 'b1', 'p50_ms', True)} / {ratio(r['b1']['p50_ms'], pi, 'b1', 'p50_ms', True)} | "
              f"{r['b32']['texts_per_s']:.0f} | "
              f"{ratio(r['b32']['texts_per_s'], dy, 'b32', 'texts_per_s', False)} / "
              f"{ratio(r['b32']['texts_per_s'], pi, 'b32', 'texts_per_s', False)} | "
              f"{r['b32x128']['texts_per_s']:.0f} ({r['b32x128']['ms_per_batch']:.0f} ms/batch) | "
              f"{ratio(r['b32x128']['texts_per_s'], dy, 'b32x128', 'texts_per_s', False)} / "
              f"{ratio(r['b32x128']['texts_per_s'], pi, 'b32x128', 'texts_per_s', False)} | {f1} |")
    fp32, int8 = rows.get("ort_fp32"), rows.get("ort_int8")
    if fp32 and int8:
        print()
        print(f"INT8 over ORT FP32: batch 1 p50 {fp32['b1']['p50_ms'] / int8['b1']['p50_ms']:.2f}×, batch 32 "
              f"{int8['b32']['texts_per_s'] / fp32['b32']['texts_per_s']:.2f}×, 32 × {args.padded_len} "
              f"{int8['b32x128']['texts_per_s'] / fp32['b32x128']['texts_per_s']:.2f}× (issue #4 target: ≥ 2×)")
    if int8 and pi and dy:
        print(f"INT8 over Paddle Inference + oneDNN: batch 32 {int8['b32']['texts_per_s'] / pi['b32']['texts_per_s']:.2f}×, "
              f"32 × {args.padded_len} {int8['b32x128']['texts_per_s'] / pi['b32x128']['texts_per_s']:.2f}× "
              f"(target: ≥ 2×); macro-F1 {100 * (int8['macro_f1'] - dy['macro_f1']):+.2f} points vs dygraph "
              "(target: loss ≤ 0.5)")


if __name__ == "__main__":
    for _key in ("checkpoint", "export", "data", "json"):  # paths as given, then run from the repository root
        if getattr(ARGS, _key):
            setattr(ARGS, _key, os.path.abspath(getattr(ARGS, _key)))
    os.chdir(Path(__file__).resolve().parents[1])
    main()
