"""Per-user tag profiles from a next-item checkpoint, their next-tag hit rate, stored in the tag database.

  python tools/user_profiles.py --checkpoint output/recommend/gru4rec_ml1m/best [--data data/movielens_1m]
      [--db output/recommend/gru4rec_ml1m/tags.db] [--version N] [--half-life auto] [--output next_tag.json]

For every user: the tag distribution of their history (each tag of an item with n tags gets 1/n), and the tag
distribution of the model's next item (softmax over the unseen items, pushed to their tags). Both are written to
the tag database (``--db``: a SQLAlchemy URL or a SQLite path, also $PADDLE_TAG_DB; default tags.db next to the
checkpoint), replacing that taxonomy version's previous profiles. The tags are those of taxonomy version
``--version`` (its items must be the log's items), or by default the log's own item tags, registered as a dataset
version. The table printed is the next-tag hit rate on the leave-one-out test split; ``--output`` (default
next_tag.json next to the checkpoint) holds the same figures as JSON.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from paddle_tag.config.cli import run_cli
from paddle_tag.discover.store import TagStore
from paddle_tag.engine.user_profiles import format_report, user_profiles
from paddle_tag.errors import ConfigError
from paddle_tag.utils.io import atomic_write_json


def half_life(text: str) -> float | str | None:
    """``--half-life``: none, auto or a number of items."""
    if text in ("none", "auto"):
        return None if text == "none" else text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected none, auto or a number of items, got {text!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a next_item checkpoint directory (e.g. <run>/best)")
    parser.add_argument("--data", help="the interaction log directory (default: the one the checkpoint trained on)")
    parser.add_argument("--db", default=os.environ.get("PADDLE_TAG_DB"),
                        help="tag database URL or SQLite path (default: <checkpoint>/../tags.db)")
    parser.add_argument("--version", type=int, default=None,
                        help="use this taxonomy version's tags (default: the log's own item tags)")
    parser.add_argument("--half-life", type=half_life, default=None,
                        help="history recency half-life in items: none (default), auto (chosen on valid) or N")
    parser.add_argument("--batch-size", type=int, default=256, help="users per scoring batch")
    parser.add_argument("--output", help="JSON of the figures (default: <checkpoint>/../next_tag.json)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    run_dir = Path(args.checkpoint).resolve().parent
    with TagStore(args.db or run_dir / "tags.db") as store:
        result = user_profiles(args.checkpoint, store, args.data, args.version, args.half_life, args.batch_size,
                               progress=True)
    output = Path(args.output or run_dir / "next_tag.json")
    atomic_write_json(output, result)
    print(format_report(result))
    print(f"profiles of {result['stored']['users']} users → {result['store']} (taxonomy version "
          f"{result['version_id']}); figures → {output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
