"""What the tags and the title text add to the two-tower model on MovieLens-1M: one table, one evaluator, one run.

    python benchmarks/two_tower_ablation.py                     # ids only, + tags, + title text; then the table
    python benchmarks/two_tower_ablation.py --variants ids tags  # some of them
    python benchmarks/two_tower_ablation.py --from-runs output/recommend/two_tower_ml1m_ids ...  # re-tabulate

Every variant trains ``configs/recommend/two_tower_ml1m.yaml`` with the same seed and the same hyper-parameters
(``-o`` overrides apply to all); only the item tower's inputs differ. ``best/`` is chosen on valid (NDCG@10); the
table shows ``best/`` on the test split beside the non-learned baselines of the same run (same evaluator, same
users), and the training minutes. The table and a JSON copy go to ``--output``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paddle_tag.config import load_config  # noqa: E402
from paddle_tag.data.sources import prepare  # noqa: E402
from paddle_tag.engine.builder import build_run  # noqa: E402
from paddle_tag.utils.io import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/recommend/two_tower_ml1m.yaml"
COLUMNS = ("hit@10", "ndcg@10", "mrr@10", "hit@50")
#: variant -> the item tower's inputs (the user tower is the same in all)
VARIANTS = {
    "ids": ["Recommend.item_tags=false", "Recommend.title_vectors=false"],
    "tags": ["Recommend.item_tags=true", "Recommend.title_vectors=false"],
    "title": ["Recommend.item_tags=true", "Recommend.title_vectors=true"],
}
LABELS = {"ids": "two-tower, ids only", "tags": "two-tower, ids + tags", "title": "two-tower, ids + tags + title"}


def variant_of(run: Path) -> str:
    """The variant a finished run trained, read from its resolved config."""
    rec = load_config(run / "config.yaml").Recommend
    return "title" if rec.title_vectors else "tags" if rec.item_tags else "ids"


def table(results: dict[str, dict]) -> str:
    """Markdown rows: the baselines of the first run, then each variant (test split), and the target line."""
    first = next(iter(results.values()))
    lines = ["| model (test) | " + " | ".join(COLUMNS) + " | valid NDCG@10 | train time |",
             "|---|" + "---|" * (len(COLUMNS) + 2)]
    for name, scores in first.get("baselines", {}).items():
        lines.append(f"| {name} | " + " | ".join(f"{scores['test'][c]:.4f}" for c in COLUMNS)
                     + f" | {scores['valid']['ndcg@10']:.4f} | – |")
    for name, result in results.items():
        lines.append(f"| {LABELS[name]} (best/ epoch {result['best']['epoch']:g}) | "
                     + " | ".join(f"{result['test'][c]:.4f}" for c in COLUMNS)
                     + f" | {result['best']['ndcg@10']:.4f} | {result['train_time_s'] / 60:.1f} min |")
    markov = first.get("baselines", {}).get("markov", {}).get("test", {}).get("hit@50")
    if markov is not None:
        for name, result in results.items():
            met = "met" if result["test"]["hit@50"] > markov else "NOT met"
            lines.append(f"\ntarget Hit@50 > Markov {markov:.4f}: {LABELS[name]} {result['test']['hit@50']:.4f} "
                         f"({met})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--from-runs", nargs="+", help="tabulate finished runs (their metrics.json) instead")
    parser.add_argument("-o", "--override", action="append", default=[], help="Section.key=value for every run")
    parser.add_argument("--output", default="output/benchmarks/two_tower_ablation.json")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    if args.from_runs:
        for run in map(Path, args.from_runs):
            results[variant_of(run)] = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    else:
        prepare("movielens_1m", REPO / "data")
        base = load_config(CONFIG, args.override).Global.output_dir
        for name in args.variants:
            overrides = [*args.override, *VARIANTS[name], f"Global.output_dir={base}_{name}"]
            results[name] = build_run(load_config(CONFIG, overrides)).fit()
    text = table(results)
    print(text)
    atomic_write_json(args.output, {"table": text, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
