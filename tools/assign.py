"""Assign new items to the current discovered taxonomy and keep its centroids current.

  python tools/assign.py -c configs/discover/<name>.yaml --input new_items.jsonl [--threshold 0.3]

Items are JSONL ``{"text": ...}`` with an optional ``"id"``, a string or an integer (default: ``sha1:`` + the
text's hash). An id already in the database with the same text is left alone (so a batch can be re-run); with
another text the batch is refused before anything is written, unless ``--update`` (replace the text, assign
again). New items are embedded with the config's ``Discover`` embedder (the one the taxonomy was discovered
with), assigned to the nearest tag centroid by cosine when it clears ``--threshold`` (else left unassigned), and the tags' centroids
move mini-batch k-means style. Items, assignments and centroids are written to the tag database
(``Discover.db_url``, default ``<Global.output_dir>/tags.db``) in one transaction; the JSON report on stdout
says whether a re-discovery is due (unassigned share or centroid drift past their thresholds).
"""
from __future__ import annotations

from pathlib import Path

from paddle_tag.errors import ConfigError
from paddle_tag.config.cli import config_from_args, config_parser, run_cli


def main(argv=None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--input", required=True, help="new items, JSONL {\"text\": ..., \"id\": optional}")
    parser.add_argument("--threshold", type=float, default=0.3, help="minimum cosine to a tag centroid")
    parser.add_argument("--max-unassigned", type=float, default=0.3,
                        help="re-discovery due above this unassigned share (of items assigned since discovery)")
    parser.add_argument("--max-drift", type=float, default=0.05,
                        help="re-discovery due when a centroid moved more than this (1 - cosine) since discovery")
    parser.add_argument("--update", action="store_true",
                        help="items whose id is stored with another text: replace the text and assign them again")
    parser.add_argument("--report", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    from paddle_tag.discover.assign import AssignParams, assign_file

    try:
        params = AssignParams(args.threshold, args.max_unassigned, args.max_drift)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    report = assign_file(config, args.input, params, update=args.update)
    text = report.to_json()
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    run_cli(main)
