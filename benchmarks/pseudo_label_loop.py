"""From zero labels to a tagger: discover tags on the THUCNews train titles, train the tagger on the
discovered tags (pseudo-labels), and score its tags on the test titles against the true classes.

    python benchmarks/pseudo_label_loop.py [--discover-dir output/discover_thucnews_e5] [-o Key=value ...]

1. ``tools/discover.py -c configs/discover/thucnews_e5.yaml --pseudo-labels`` (the embedding cache of
   ``--discover-dir`` is reused when present); labels are not read.
2. The pseudo-labelled titles are split 90/10 (seeded) into train / dev, and the pruned e5 tagger
   (configs/text/thucnews_e5_small_pruned.yaml) trains on them for ``Global.epochs`` (default 1 here).
3. The tagger tags the 1,000 test titles. Agreement with the true classes: NMI and ARI, and accuracy after
   mapping each discovered tag to the true class most of its training titles have (the mapping uses the
   training titles' labels, never the test ones). Results go to ``output/bench/pseudo_label_loop.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from paddle_tag.config import load_config
from paddle_tag.data.readers import read_examples
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.predictor import predict_texts
from paddle_tag.metrics.clustering import clustering_metrics
from paddle_tag.utils.io import atomic_write_json, write_jsonl

WORK = Path("output/bench/pseudo_label_loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--discover-dir", default="output/discover_thucnews_e5")
    parser.add_argument("-o", "--override", action="append", default=[], help="tagger config override")
    args = parser.parse_args()
    pseudo = WORK / "pseudo.jsonl"
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "tools/discover.py", "-c", "configs/discover/thucnews_e5.yaml", "-o",
                    f"Global.output_dir={args.discover_dir}", "--pseudo-labels", str(pseudo), "--no-db"], check=True)
    rows = [json.loads(line) for line in pseudo.read_text(encoding="utf-8").splitlines()]
    order = np.random.default_rng(0).permutation(len(rows))
    cut = int(0.9 * len(rows))
    write_jsonl(WORK / "train.jsonl", [rows[i] for i in order[:cut]])
    write_jsonl(WORK / "dev.jsonl", [rows[i] for i in order[cut:]])
    config = load_config("configs/text/thucnews_e5_small_pruned.yaml", [
        f"Global.output_dir={WORK / 'tagger'}", "Global.epochs=1", f"Data.train_path={WORK / 'train.jsonl'}",
        f"Data.eval_path={WORK / 'dev.jsonl'}", "Data.test_path=null", *args.override])
    result = build_run(config).fit()

    # the discovered tag → the true class most of its training titles have (train labels only)
    true_of = {e.text: e.labels[0] for e in read_examples("data/thucnews/train.jsonl")}
    votes: dict[str, Counter] = {}
    for row in rows:
        votes.setdefault(row["labels"][0], Counter())[true_of[row["text"]]] += 1
    mapping = {tag: counts.most_common(1)[0][0] for tag, counts in votes.items()}
    test = read_examples("data/thucnews/test.jsonl")
    checkpoint = load_checkpoint(WORK / "tagger" / "best")
    predicted = [r["tags"][0] for r in predict_texts(checkpoint, [e.text for e in test])]
    truth = [e.labels[0] for e in test]
    tag_ids = [checkpoint.labels.names.index(tag) for tag in predicted]
    report = {"items": len(rows), "tags": len(mapping), "mapping": mapping, "tagger_dev": result["best"],
              "train_time_s": result["train_time_s"], **{f"test_{k}": v for k, v in
                                                          clustering_metrics(truth, tag_ids).items()},
              "test_accuracy_mapped": float(np.mean([mapping[p] == t for p, t in zip(predicted, truth)]))}
    atomic_write_json("output/bench/pseudo_label_loop.json", report)
    print(json.dumps({k: v for k, v in report.items() if k != "mapping"}, ensure_ascii=False))


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    main()
