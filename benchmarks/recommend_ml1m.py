"""Next-item models vs non-learned baselines on MovieLens-1M, side by side, one evaluator (full ranking, test split).

    python benchmarks/recommend_ml1m.py                         # train SASRec and GRU4Rec, then the table
    python benchmarks/recommend_ml1m.py --models sasrec         # one of them
    python benchmarks/recommend_ml1m.py --from-runs output/recommend/sasrec_ml1m output/recommend/gru4rec_ml1m

Each model trains with its recipe (``configs/recommend/<model>_ml1m.yaml``; ``-o`` overrides apply to all); its
``metrics.json`` holds ``best/`` on test and the baselines (MostPopular, ItemKNN, Markov chain) on valid and test,
computed in the same run by the same evaluator. The table and a JSON copy go to ``--output``.
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
COLUMNS = ("hit@10", "ndcg@10", "mrr@10", "hit@50")


def table(results: dict[str, dict]) -> str:
    """Markdown rows: the baselines of the first run, then every model (test split)."""
    first = next(iter(results.values()))
    lines = ["| model | " + " | ".join(COLUMNS) + " | train time |",
             "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name, scores in first.get("baselines", {}).items():
        lines.append(f"| {name} | " + " | ".join(f"{scores['test'][c]:.4f}" for c in COLUMNS) + " | – |")
    for name, result in results.items():
        minutes = result["train_time_s"] / 60
        lines.append(f"| {name} (best/ epoch {result['best']['epoch']:g}) | "
                     + " | ".join(f"{result['test'][c]:.4f}" for c in COLUMNS) + f" | {minutes:.1f} min |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"])
    parser.add_argument("--from-runs", nargs="+", help="tabulate finished runs (their metrics.json) instead")
    parser.add_argument("-o", "--override", action="append", default=[], help="Section.key=value for every run")
    parser.add_argument("--output", default="output/benchmarks/recommend_ml1m.json")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    if args.from_runs:
        for run in args.from_runs:
            result = json.loads((Path(run) / "metrics.json").read_text(encoding="utf-8"))
            results[result.get("model", Path(run).name)] = result
    else:
        prepare("movielens_1m", REPO / "data")
        for model in args.models:
            config = load_config(REPO / f"configs/recommend/{model}_ml1m.yaml", args.override)
            results[model] = build_run(config).fit()
    text = table(results)
    print(text)
    atomic_write_json(args.output, {"table": text, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
