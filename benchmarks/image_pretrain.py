"""Image pretraining on Fashion-MNIST: SimCLR and MoCo v2 against random init, in one run, on this machine.

    python benchmarks/image_pretrain.py [--methods simclr moco] [--steps 100] [--probe-items 5000]
        [--mosaic-fraction 0.1] [--mosaic-steps 30] [--seeds 0 1]

1. Pretrain ResNet18 (configs/image/{simclr,moco}_resnet18_fashion.yaml) for ``--steps`` steps of 128 images
   (labels unused); samples/s is the pretraining throughput (images per second, two views each).
2. Read out the frozen backbone of each, and of a random-init ResNet18: weighted kNN top-1 (k=20) and a
   linear probe (logistic regression), fitted on ``--probe-items`` train images and scored on as many test
   images (:func:`paddle_tag.engine.probe.probe_encoder`, what ``tools/eval.py --linear-probe`` runs).
3. Few-label transfer: fine-tune each start on ``--mosaic-fraction`` of the 12,000 train mosaics for
   ``--mosaic-steps`` steps (configs/image/mosaic_resnet18.yaml), thresholds tuned on 500 dev mosaics, scored
   on 1,000 test mosaics; micro/macro-F1 and mAP, mean over the seeds.

Results go to ``output/bench/image_pretrain.json``; the tables printed are Markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from paddle_tag.config import load_config
from paddle_tag.data.images import read_image_set
from paddle_tag.data.sources import prepare
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.probe import probe_encoder

WORK = Path("output/bench/image_pretrain")
RESULTS = Path("output/bench/image_pretrain.json")
PRETRAIN = {"simclr": "configs/image/simclr_resnet18_fashion.yaml", "moco": "configs/image/moco_resnet18_fashion.yaml"}
MOSAIC = "configs/image/mosaic_resnet18.yaml"
FASHION_TRAIN, FASHION_TEST = "data/fashion_mnist/train.npz", "data/fashion_mnist/test.npz"


def write_subset(source: str, count: int, seed: int, path: Path) -> str:
    """``count`` images of ``source`` drawn with ``seed`` into ``path`` (with the class names beside it)."""
    subset = read_image_set(source).subset(count, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = subset.labels.astype("uint8") if subset.labels.ndim == 2 else subset.labels
    np.savez(path, images=subset.images, labels=labels)
    shutil.copyfile(Path(source).parent / "labels.json", path.parent / "labels.json")
    return str(path)


def pretrain(method: str, steps: int) -> tuple[str, dict]:
    out = WORK / method
    config = load_config(PRETRAIN[method], [f"Global.output_dir={out}", f"Global.max_steps={steps}",
                                            "Global.eval_every=-1", "Global.resume=false"])
    result = build_run(config).fit()
    return str(out / "best"), {"steps": result["steps"], "train_time_s": result["train_time_s"],
                               "samples_per_s": result["samples_per_s"]}


def mosaic_fine_tune(start: str, checkpoint: str | None, fraction: float, steps: int, seed: int) -> dict:
    train = write_subset("data/fashion_mosaic/train.npz", round(12000 * fraction), seed,
                         WORK / "mosaic" / f"train_{fraction:g}_seed{seed}.npz")
    dev = write_subset("data/fashion_mosaic/dev.npz", 500, 0, WORK / "mosaic" / "dev_500.npz")
    test = write_subset("data/fashion_mosaic/test.npz", 1000, 0, WORK / "mosaic" / "test_1000.npz")
    config = load_config(MOSAIC, [f"Global.output_dir={WORK / 'mosaic' / start / f'seed{seed}'}",
                                  f"Global.seed={seed}", f"Global.max_steps={steps}", "Global.epochs=1000",
                                  "Global.eval_every=-1", "Global.resume=false", "Global.progress=false",
                                  "Data.batch_size=64", f"Data.train_path={train}", f"Data.eval_path={dev}",
                                  f"Data.test_path={test}", f"Model.pretrained={checkpoint or 'null'}"])
    result = build_run(config).fit()
    return {k: round(result["test"][k], 4) for k in ("micro_f1", "macro_f1", "mAP")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(PRETRAIN), choices=list(PRETRAIN))
    parser.add_argument("--steps", type=int, default=100, help="pretraining steps of 128 images")
    parser.add_argument("--probe-items", type=int, default=5000)
    parser.add_argument("--mosaic-fraction", type=float, default=0.1)
    parser.add_argument("--mosaic-steps", type=int, default=30)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args()
    prepare("fashion_mnist", "data")
    prepare("fashion_mosaic", "data")
    probe_config = load_config(PRETRAIN["simclr"], [])
    starts: dict[str, tuple[str | None, dict]] = {"random init": (None, {})}
    for method in args.methods:
        starts[method] = pretrain(method, args.steps)
    rows = []
    for start, (checkpoint, cost) in starts.items():
        probe = probe_encoder(probe_config, checkpoint, FASHION_TRAIN, FASHION_TEST, args.probe_items)
        runs = [mosaic_fine_tune(start.replace(" ", "_"), checkpoint, args.mosaic_fraction, args.mosaic_steps, s)
                for s in args.seeds]
        mosaic = {k: [r[k] for r in runs] for k in ("micro_f1", "macro_f1", "mAP")}
        row = {"start": start, **cost, "knn_top1": round(probe["knn_top1"], 4),
               "linear_probe": round(probe["linear_probe_accuracy"], 4), "mosaic": mosaic,
               "date": time.strftime("%Y-%m-%d")}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    from paddle_tag.utils.io import atomic_write_json

    atomic_write_json(RESULTS, {"rows": rows, "args": vars(args), "cpus": os.cpu_count()})
    print_tables(rows, args)


def print_tables(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"| start | pretraining | images/s | kNN top-1 | linear probe | mosaics ({100 * args.mosaic_fraction:g} % "
          f"labels) micro-F1 | macro-F1 | mAP |")
    print("|---|---|---|---|---|---|---|---|")
    base = rows[0]["mosaic"]
    for row in rows:
        cost = f"{row['steps']} steps, {row['train_time_s']:.0f} s" if "steps" in row else "–"
        speed = f"{row['samples_per_s']:.1f}" if "samples_per_s" in row else "–"
        cells = []
        for key in ("micro_f1", "macro_f1", "mAP"):
            mean, std = float(np.mean(row["mosaic"][key])), float(np.std(row["mosaic"][key]))
            gain = f" ({100 * (mean - float(np.mean(base[key]))):+.1f})" if row is not rows[0] else ""
            cells.append(f"{mean:.3f} ± {std:.3f}{gain}")
        print(f"| {row['start']} | {cost} | {speed} | {row['knn_top1']:.3f} | {row['linear_probe']:.3f} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    main()
