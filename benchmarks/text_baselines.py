"""Tagging accuracy on the same splits and CPU: TF-IDF + LR, the random-init small ERNIE, multilingual-e5-small
frozen + LR, e5-small fine-tuned (full or pruned vocabulary), and the long-text / long-tail recipes: e5 frozen
with windows and the wide part (and each without the other), e5 fine-tuned with windows and the wide part.

    python benchmarks/text_baselines.py [--datasets thucnews poetry] [--models tfidf ernie e5-frozen e5 e5-pruned
        e5-frozen-wide e5-frozen-windows e5-frozen-wide-truncate e5-wide] [-o Global.epochs=2 ...]

Every model trains on ``train``; multi-label thresholds are tuned on ``dev`` (the same per-class tuning for
all); every figure is on the held-out ``test`` split. ``train_s`` is the training loop (or the model fit);
``recipe_s`` the whole run: reading and tokenising, embedding (the frozen rows start from an empty feature
cache, so their time includes embedding every window once), training, evaluation and threshold tuning. Rows are
merged by (dataset, model) into ``output/bench/text_baselines.json``, so long rows can be run separately; the
table printed is of all rows there. The e5 rows need ``make e5`` (the converted model in the local models cache).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
from paddle_tag.engine.builder import build_run
from paddle_tag.metrics import compute_metrics, tune_thresholds
from paddle_tag.utils.io import atomic_write_json

CONFIGS = {"thucnews": "configs/text/thucnews_ernie_small.yaml", "poetry": "configs/text/poetry_ernie_small.yaml"}
E5_CONFIGS = {"thucnews": "configs/text/thucnews_e5_small.yaml", "poetry": "configs/text/poetry_e5_small.yaml"}
FROZEN_WIDE = {"thucnews": "configs/text/thucnews_e5_frozen_wide.yaml",
               "poetry": "configs/text/poetry_e5_frozen_wide.yaml"}
WIDE = {"thucnews": "configs/text/thucnews_e5_wide.yaml", "poetry": "configs/text/poetry_e5_wide.yaml"}
RESULTS = Path("output/bench/text_baselines.json")
SHOWN = {"multi_class": ("accuracy", "macro_f1"), "multi_label": ("micro_f1", "macro_f1", "mAP")}


def tfidf_logreg(config) -> tuple[dict, float, float]:
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
    return metrics, seconds, time.time() - started


def fine_tune(config) -> tuple[dict, float, float]:
    started = time.time()
    result = build_run(config).fit()
    return result["test"], result["train_time_s"], time.time() - started


def e5_frozen_logreg(config) -> tuple[dict, float, float]:
    """multilingual-e5-small as a frozen feature extractor ("query: " + text, mean pooled, whole text)."""
    from paddle_tag.models.embedder import Embedder

    task = config.Data.task
    splits = [read_examples(p) for p in (config.Data.train_path, config.Data.eval_path, config.Data.test_path)]
    labels = LabelSet.from_examples(splits[0])
    started = time.time()
    embedder = Embedder.from_pretrained(config.Model.pretrained, prefix=config.Data.text_prefix)
    x_train, x_dev, x_test = (embedder.embed([e.text for e in split], progress=True) for split in splits)
    classifier = LogisticRegression(C=10.0, max_iter=3000)
    if task == "multi_label":
        classifier = OneVsRestClassifier(classifier, n_jobs=1)
    classifier.fit(x_train, labels.encode(splits[0], task))
    seconds = time.time() - started
    thresholds = None
    if task == "multi_label":
        thresholds = tune_thresholds(labels.encode(splits[1], task), classifier.predict_proba(x_dev))
    metrics = compute_metrics(task, labels.encode(splits[2], task), classifier.predict_proba(x_test), thresholds)
    return metrics, seconds, time.time() - started


# --models key → (row name, which config, fit, extra overrides)
MODELS = {
    "tfidf": ("tfidf-char12+logreg", CONFIGS, tfidf_logreg, []),
    "ernie": ("paddle_tag ernie-small (random init)", CONFIGS, fine_tune, []),
    "e5-frozen": ("multilingual-e5-small frozen + logreg", E5_CONFIGS, e5_frozen_logreg, []),
    "e5": ("paddle_tag e5-small fine-tuned", E5_CONFIGS, fine_tune, []),
    "e5-pruned": ("paddle_tag e5-small, pruned vocab, fine-tuned", E5_CONFIGS, fine_tune, ["Model.prune_vocab=true"]),
    "e5-frozen-wide": ("paddle_tag e5-small frozen, windows + wide", FROZEN_WIDE, fine_tune, []),
    "e5-frozen-windows": ("paddle_tag e5-small frozen, windows, no wide", FROZEN_WIDE, fine_tune, ["Model.wide=false"]),
    "e5-frozen-wide-truncate": ("paddle_tag e5-small frozen + wide, no windows (truncated)", FROZEN_WIDE, fine_tune,
                                ["Data.on_long_text=truncate"]),
    "e5-wide": ("paddle_tag e5-small fine-tuned, windows + wide", WIDE, fine_tune, []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("-o", "--override", action="append", default=[], help="extra config override")
    parser.add_argument("--shared-features", metavar="DIR",
                        help="frozen rows read/write window features here instead of starting each from an empty "
                             "cache (for ablations of one recipe; their whole-recipe time then omits the embedding)")
    args = parser.parse_args()
    rows = json.loads(RESULTS.read_text(encoding="utf-8"))["rows"] if RESULTS.is_file() else []
    for name in args.datasets:
        prepare(name, "data")
        prepare("vocab", "data")
        for key in args.models:
            model, configs, fit, extra = MODELS[key]
            out = f"output/bench/{name}/{key}"
            cache = args.shared_features or f"{out}/features"
            if not args.shared_features:
                shutil.rmtree(cache, ignore_errors=True)  # frozen rows: time the embedding too
            config = load_config(configs[name], [f"Global.output_dir={out}", f"Model.feature_cache={cache}",
                                                 *extra, *args.override])
            metrics, seconds, recipe_seconds = fit(config)
            row = {"dataset": name, "task": config.Data.task, "model": model, "train_s": round(seconds, 1),
                   "recipe_s": round(recipe_seconds, 1), "date": time.strftime("%Y-%m-%d"),
                   "features": "shared cache" if args.shared_features and config.Model.freeze_encoder else "cold",
                   **{k: round(metrics[k], 4) for k in SHOWN[config.Data.task]}}
            rows = [r for r in rows if (r["dataset"], r["model"]) != (name, model)] + [row]
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr)
            atomic_write_json(RESULTS, {"rows": rows, "cpu_threads": os.environ.get("OMP_NUM_THREADS"),
                                        "cpus": os.cpu_count()})
    print_table(sorted(rows, key=lambda r: (r["dataset"], list(MODELS.values()).index(
        next(v for v in MODELS.values() if v[0] == r["model"])))))


def print_table(rows: list[dict]) -> None:
    """A Markdown table; the last column is this row's macro-F1 minus the TF-IDF row's, in points."""
    print("| dataset | model | accuracy | micro-F1 | macro-F1 | mAP | train time | whole recipe | macro-F1 vs TF-IDF |")
    print("|---|---|---|---|---|---|---|---|---|")
    baseline = {r["dataset"]: r for r in rows if r["model"] == MODELS["tfidf"][0]}
    for row in rows:
        base = baseline.get(row["dataset"])
        delta = f"{100 * (row['macro_f1'] - base['macro_f1']):+.1f} pts" if base else "–"
        cells = [f"{row[k]:.4f}" if k in row else "–" for k in ("accuracy", "micro_f1", "macro_f1", "mAP")]
        recipe = f"{row['recipe_s']:.0f} s" if "recipe_s" in row else "–"
        if row.get("features") == "shared cache":
            recipe += " (features cached)"
        print(f"| {row['dataset']} | {row['model']} | {' | '.join(cells)} | {row['train_s']:.0f} s | {recipe} | {delta} |")


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    main()
