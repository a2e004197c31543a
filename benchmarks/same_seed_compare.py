"""Compare two folders of same-seed runs (benchmarks/same_seed_parity.sh): every metric of ``best`` and ``final``,
the steps, the train and eval history of ``last/trainer_state.json``, and the weights of ``best/`` and ``last/``
bit for bit. Prints one row per run; exits 1 if anything differs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

RUNS = ("tag_mc", "tag_ml", "simcse", "simclr", "moco", "img_tag")
SKIP = ("epoch", "train_time_s", "train_loss")  # timings; train_loss is a new field of the eval records


def numbers(record: dict | None) -> dict:
    return {k: v for k, v in (record or {}).items() if isinstance(v, (int, float)) and k not in SKIP}


def compare(a: Path, b: Path) -> tuple[int, int, list]:
    checks = []
    ma, mb = (json.loads((d / "metrics.json").read_text(encoding="utf-8")) for d in (a, b))
    for part in ("best", "final", "test"):
        checks += [(f"{part}.{k}", v, numbers(mb.get(part)).get(k)) for k, v in numbers(ma.get(part)).items()]
    checks += [(key, ma[key], mb[key]) for key in ("steps", "best_step")]
    sa, sb = (json.loads((d / "last/trainer_state.json").read_text(encoding="utf-8")) for d in (a, b))
    for part in ("train", "eval"):
        checks.append((f"history.{part} length", len(sa["history"][part]), len(sb["history"][part])))
        for i, (ra, rb) in enumerate(zip(sa["history"][part], sb["history"][part])):
            checks += [(f"history.{part}[{i}].{k}", v, numbers(rb).get(k)) for k, v in numbers(ra).items()]
    files = 0
    for folder in ("best", "last"):
        for path in sorted((a / folder).glob("*.safetensors")):
            wa, wb = load_file(str(path)), load_file(str(b / folder / path.name))
            same = wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
            checks.append((f"{folder}/{path.name}", True, same))
            files += 1
    return len(checks), files, [c for c in checks if c[1] != c[2]]


def main(a: str, b: str) -> int:
    failed = 0
    print(f"{'run':8s} {'values':>6s} {'weight files':>12s} {'differ':>6s}")
    for run in RUNS:
        count, files, diff = compare(Path(a) / run, Path(b) / run)
        failed += len(diff)
        print(f"{run:8s} {count:6d} {files:12d} {len(diff):6d}", *diff[:3])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
