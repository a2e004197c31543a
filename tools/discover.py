"""Discover tags: ``python tools/discover.py -c configs/discover/<name>.yaml [-o Section.key=value ...]``.

Clusters ``Data.train_path``'s items (embed → reduce → cluster → name), writes taxonomy.json,
assignments.jsonl, metrics.json and report.{png,md} to ``Global.output_dir``, then stores the taxonomy as a
new version in the tag database (``Discover.db_url``; default a SQLite file in the output directory).
``--pseudo-labels out.jsonl`` also writes the assigned items as training data for ``tools/train.py``.
"""
from __future__ import annotations

import json

from paddle_tag.config.cli import config_from_args, config_parser, run_cli


def main(argv=None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--pseudo-labels", metavar="OUT.jsonl", help="write {\"text\", \"labels\": [tag]} rows")
    parser.add_argument("--no-db", action="store_true", help="write the files only, not the tag database")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    from paddle_tag.discover.pipeline import database_url, discover, write_run

    corpus, result = discover(config)
    metrics = write_run(config, corpus, result, args.pseudo_labels)
    summary = {k: metrics[k] for k in ("items", "k", "outlier_share", "nmi", "ari", "purity") if k in metrics}
    if not args.no_db:
        from paddle_tag.discover.store import TagStore

        summary["taxonomy_version"] = TagStore(database_url(config)).write_taxonomy(result.taxonomy)
    print(json.dumps(summary, ensure_ascii=False))
    print(f"outputs in {config.Global.output_dir}: taxonomy.json, assignments.jsonl, metrics.json, report.md/png"
          + (f"; pseudo-labels in {args.pseudo_labels}" if args.pseudo_labels else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
