"""Few-label gain from pretraining: fine-tune on 1 % and 10 % of the THUCNews training labels from four starts,
and the kNN accuracy of each start's frozen embeddings.

    python benchmarks/few_label.py [--starts random simcse e5 e5-simcse] [--fractions 0.01 0.1]
        [--seeds 0 1 2] [--steps 100] [-o Key=value ...]

Starts (the two SimCSE ones need their pretraining runs first, see configs/pretrain/*.yaml):
  random     the small ERNIE of configs/text/thucnews_ernie_small.yaml, random init
  simcse     the same ERNIE after SimCSE from scratch (output/pretrain/simcse_ernie_small/best, mean pooling)
  e5         multilingual-e5-small (make e5), vocabulary pruned to the training titles
  e5-simcse  e5 after SimCSE domain adaptation on the training titles (output/pretrain/simcse_e5_small/best)

The labelled subset of each (fraction, seed) is drawn per class (at least one title per class) from
``data/thucnews/train.jsonl``; the other titles' labels are never read for training. Every start trains the
same number of optimizer steps with the same batch size (the budget), evaluates only at the end, and is
scored on the full test split; the "dev" split of these runs is 10 titles per class, as a few-label user
would have. Figures are macro-F1 mean ± std over the seeds. kNN: weighted kNN (k=20, as the monitor) of
test titles against a memory bank of the labelled training titles (all 8,000, and each seed's subsets), on
the start's frozen, pooled, L2-normalised embeddings. Rows go to ``output/bench/few_label.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from paddle_tag.config import load_config
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.sources import prepare
from paddle_tag.engine.builder import build_run
from paddle_tag.metrics.knn import knn_accuracy
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.pretrained import resolve_pretrained
from paddle_tag.utils.io import atomic_write_json, atomic_write_text

TRAIN, DEV, TEST = (f"data/thucnews/{split}.jsonl" for split in ("train", "dev", "test"))
WORK = Path("output/bench/few_label")
RESULTS = Path("output/bench/few_label.json")
E5_PRUNED = WORK / "e5_pruned"
ERNIE, E5 = "configs/text/thucnews_ernie_small.yaml", "configs/text/thucnews_e5_small.yaml"
# --starts key → (row name, config, overrides); pretrained starts fine-tune at the e5 recipe's rate
STARTS = {
    "random": ("ERNIE-small, random init", ERNIE, []),
    "simcse": ("ERNIE-small + SimCSE from scratch", ERNIE,
               ["Model.pretrained=output/pretrain/simcse_ernie_small/best", "Model.pooling=mean", "Optimizer.lr=1e-4"]),
    "e5": ("multilingual-e5-small", E5, [f"Model.pretrained={E5_PRUNED}"]),
    "e5-simcse": ("e5-small + SimCSE domain adaptation", E5, ["Model.pretrained=output/pretrain/simcse_e5_small/best"]),
}


def labelled_subset(examples: list, fraction: float, seed: int) -> list[int]:
    """Indices of ``fraction`` of the examples of every class (at least one each), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_class.setdefault(example.labels[0], []).append(index)
    chosen = []
    for name in sorted(by_class):
        members = np.array(by_class[name])
        chosen += rng.permutation(members)[:max(1, round(fraction * len(members)))].tolist()
    return sorted(chosen)


def write_subset(source: str, indices: list[int], path: Path) -> str:
    lines = Path(source).read_text(encoding="utf-8").splitlines()
    atomic_write_text(path, "".join(lines[i] + "\n" for i in indices))
    return str(path)


def prune_e5() -> None:
    """e5 with its vocabulary pruned to the training titles (the unlabeled text every start may see)."""
    from paddle_tag.weights.pruning import is_pruned_from, prune_model_dir

    source = resolve_pretrained("multilingual-e5-small")
    texts = ["query: " + e.text for e in read_examples(TRAIN)]
    if not is_pruned_from(E5_PRUNED, source, texts):
        prune_model_dir(source, texts, E5_PRUNED, corpus_name=TRAIN)


def knn_scores(config, subsets: dict[tuple[float, int], list[int]]) -> dict[str, float]:
    """kNN top-1 on test of the start's frozen embeddings: bank = all train labels, and each subset."""
    trainer = build_run(config)  # the start exactly as fine-tuning sees it (random init: seeded)
    embedder = Embedder(trainer.model.encoder, trainer.task.tokenizer, pooling=config.Model.pooling,
                        max_tokens=config.Data.max_seq_len, batch_size=64)
    train, test = read_examples(TRAIN), read_examples(TEST)
    labels = LabelSet.from_examples(train)
    y_train, y_test = labels.encode(train, "multi_class"), labels.encode(test, "multi_class")
    bank = embedder.embed([e.text for e in train], progress=True, desc="embed train")
    queries = embedder.embed([e.text for e in test], progress=True, desc="embed test")
    scores = {"knn_all": knn_accuracy(bank, y_train, queries, y_test, len(labels))}
    for fraction in sorted({f for f, _ in subsets}):
        accs = [knn_accuracy(bank[idx], y_train[idx], queries, y_test, len(labels), k=min(20, len(idx)))
                for (f, _), idx in subsets.items() if f == fraction]
        scores[f"knn_{fraction:g}"] = float(np.mean(accs))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=list(STARTS))
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per fine-tuning run (the budget)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument("-o", "--override", action="append", default=[], help="extra config override")
    args = parser.parse_args()
    prepare("thucnews", "data")
    prepare("vocab", "data")
    train = read_examples(TRAIN)
    subsets = {(f, s): labelled_subset(train, f, s) for f in args.fractions for s in args.seeds}
    dev = write_subset(DEV, labelled_subset(read_examples(DEV), 0.01, 0), WORK / "data" / "dev_10_per_class.jsonl")
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {"rows": [], "knn": []}
    budget = [f"Global.max_steps={args.steps}", "Global.epochs=100000", "Global.eval_every=-1",
              f"Data.batch_size={args.batch_size}", "Global.progress=false", *args.override]
    for key in args.starts:
        name, config_path, extra = STARTS[key]
        if key == "e5":
            prune_e5()
        if not args.skip_knn:
            config = load_config(config_path, [f"Global.output_dir={WORK / key / 'knn'}", *extra, *budget])
            row = {"start": name, **{k: round(v, 4) for k, v in knn_scores(config, subsets).items()}}
            results["knn"] = [r for r in results["knn"] if r["start"] != name] + [row]
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr)
            atomic_write_json(RESULTS, results)
        for (fraction, seed), indices in subsets.items():
            subset = write_subset(TRAIN, indices, WORK / "data" / f"train_{fraction:g}_seed{seed}.jsonl")
            out = WORK / key / f"{fraction:g}_seed{seed}"
            config = load_config(config_path, [f"Global.output_dir={out}", f"Global.seed={seed}",
                                               f"Data.train_path={subset}", f"Data.eval_path={dev}", *extra, *budget])
            result = build_run(config).fit()
            row = {"start": name, "fraction": fraction, "seed": seed, "labels": len(indices), "steps": result["steps"],
                   "train_s": result["train_time_s"], "macro_f1": round(result["test"]["macro_f1"], 4),
                   "accuracy": round(result["test"]["accuracy"], 4), "date": time.strftime("%Y-%m-%d")}
            results["rows"] = [r for r in results["rows"]
                               if (r["start"], r["fraction"], r["seed"]) != (name, fraction, seed)] + [row]
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr)
            atomic_write_json(RESULTS, {**results, "cpus": os.cpu_count(), "steps": args.steps,
                                        "batch_size": args.batch_size})
    print_tables(results)


def print_tables(results: dict) -> None:
    """Macro-F1 mean ± std per start and fraction, the gain over random init, and the kNN table."""
    order = [v[0] for v in STARTS.values()]
    fractions = sorted({r["fraction"] for r in results["rows"]})
    cell = {}
    for start in order:
        for fraction in fractions:
            values = [r["macro_f1"] for r in results["rows"] if (r["start"], r["fraction"]) == (start, fraction)]
            if values:
                cell[start, fraction] = (float(np.mean(values)), float(np.std(values)), len(values))
    print("| start | " + " | ".join(f"{100 * f:g} % labels: macro-F1 | vs random" for f in fractions) + " |")
    print("|---|" + "---|---|" * len(fractions))
    for start in order:
        cells = []
        for fraction in fractions:
            if (start, fraction) not in cell:
                cells += ["–", "–"]
                continue
            mean, std, n = cell[start, fraction]
            base = cell.get((order[0], fraction))
            cells += [f"{mean:.3f} ± {std:.3f} (n={n})", f"{100 * (mean - base[0]):+.1f} pts" if base else "–"]
        print(f"| {start} | " + " | ".join(cells) + " |")
    if results["knn"]:
        keys = [k for k in results["knn"][0] if k.startswith("knn_")]
        names = {k: "all 8,000" if k == "knn_all" else f"{100 * float(k[4:]):g} %" for k in keys}
        print("\n| start | " + " | ".join(f"kNN top-1, {names[k]} labelled" for k in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for row in sorted(results["knn"], key=lambda r: order.index(r["start"]) if r["start"] in order else 99):
            print(f"| {row['start']} | " + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in keys) + " |")


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    main()
