"""TF-IDF (char 1–2-gram) + logistic regression vs the paddle_tag small ERNIE, same splits, same CPU.

    python benchmarks/text_baselines.py [--datasets thucnews poetry] [-o Global.epochs=2 ...]

Both models train on ``train``, multi-label thresholds are tuned on ``dev`` (same per-class tuning for
both), and every figure is on the held-out ``test`` split. Prints one table; writes the rows as JSON to
``output/bench/text_baselines.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from paddle_tag.config import load_config
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.sources import prepare
from paddle_tag.engine.builder import build_trainer
from paddle_tag.metrics import compute_metrics, tune_thresholds
from paddle_tag.utils.io import atomic_write_json

CONFIGS = {"thucnews": "configs/text/thucnews_ernie_small.yaml", "poetry": "configs/text/poetry_ernie_small.yaml"}
SHOWN = {"multi_class": ("accuracy", "macro_f1"), "multi_label": ("micro_f1", "macro_f1", "mAP")}


def tfidf_logreg(config) -> tuple[dict, float]:
    """Fit the baseline on train, tune thresholds on dev (multi-label), score test."""
    task = config.Data.task
    train, dev, test = (read_examples(p) for p in (config.Data.train_path, config.Data.eval_path,
                                                    config.Data.test_path))
    labels = LabelSet.from_examples(train)
    started = time.time()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([e.text for e in train])
    classifier = LogisticRegression(C=10.0, max_iter=2000)
    if task == "multi_label":
        classifier = OneVsRestClassifier(classifier, n_jobs=1)
    classifier.fit(x_train, labels.encode(train, task))
    seconds = time.time() - started
    scores = {name: classifier.predict_proba(vectorizer.transform([e.text for e in split]))
              for name, split in (("dev", dev), ("test", test))}
    thresholds = None
    if task == "multi_label":
        thresholds = tune_thresholds(labels.encode(dev, task), scores["dev"])
    metrics = compute_metrics(task, labels.encode(test, task), scores["test"], thresholds)
    return metrics, seconds


def paddle_tag_small(config) -> tuple[dict, float]:
    result = build_trainer(config).fit()
    return result["test"], result["train_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("-o", "--override", action="append", default=[], help="extra config override")
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        prepare(name, "data")
        prepare("vocab", "data")
        out = f"output/bench/{name}"
        config = load_config(CONFIGS[name], [f"Global.output_dir={out}", *args.override])
        for model, fit in (("tfidf-char12+logreg", tfidf_logreg), ("paddle_tag ernie-small (random init)",
                                                                     paddle_tag_small)):
            metrics, seconds = fit(config)
            rows.append({"dataset": name, "task": config.Data.task, "model": model, "train_s": round(seconds, 1),
                         **{k: round(metrics[k], 4) for k in SHOWN[config.Data.task]}})
            print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr)
    print_table(rows)
    atomic_write_json("output/bench/text_baselines.json", {"rows": rows, "cpu_threads": os.environ.get(
        "OMP_NUM_THREADS"), "cpus": os.cpu_count()})


def print_table(rows: list[dict]) -> None:
    """A Markdown table; the last column is this row's primary metric over the TF-IDF row's."""
    print("| dataset | model | accuracy | micro-F1 | macro-F1 | mAP | train time | vs TF-IDF |")
    print("|---|---|---|---|---|---|---|---|")
    baseline = {}
    for row in rows:
        primary = "accuracy" if row["task"] == "multi_class" else "micro_f1"
        baseline.setdefault(row["dataset"], row)
        ratio = row[primary] / baseline[row["dataset"]][primary] if baseline[row["dataset"]][primary] else float("nan")
        cells = [f"{row[k]:.4f}" if k in row else "–" for k in ("accuracy", "micro_f1", "macro_f1", "mAP")]
        print(f"| {row['dataset']} | {row['model']} | {' | '.join(cells)} | {row['train_s']:.0f} s | "
              f"{ratio:.2f}× {primary} |")


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    main()
