"""Write L2-normalised embeddings of a JSONL/TSV file's texts to ``.npy`` (row i = text i).

  python tools/embed.py --model multilingual-e5-small --input data/thucnews/test.jsonl --output out/emb.npy
  python tools/embed.py --checkpoint output/thucnews_e5_small/best --input ... --output ...

``--model`` is a model directory or a name in the local models cache (e5 models want ``--prefix "query: "``
or ``"passage: "``, the default); ``--checkpoint`` uses a fine-tuned tagger's encoder, tokenizer and pooling.
A ``.json`` sidecar next to the output records the model, prefix, pooling and input.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

from paddle_tag.data.readers import read_examples
from paddle_tag.engine.checkpoint import checkpoint_embedder
from paddle_tag.errors import ConfigError
from paddle_tag.models.embedder import Embedder
from paddle_tag.config.cli import run_cli
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_json, sha256_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="pretrained model directory or a name in the local models cache")
    source.add_argument("--checkpoint", help="a paddle_tag checkpoint directory")
    parser.add_argument("--input", required=True, help=".jsonl (objects with a \"text\") or .tsv file")
    parser.add_argument("--output", required=True, help="the .npy file to write")
    parser.add_argument("--prefix", default=None, help='text prefix (default "passage: " for --model, none for '
                                                       "--checkpoint, whose tokenizer carries its own)")
    parser.add_argument("--pooling", choices=("mean", "cls"), default=None, help="default: mean / the checkpoint's")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=None, help="window length (default: the model's limit)")
    args = parser.parse_args(argv)
    if not args.output.endswith(".npy"):
        raise ConfigError(f"--output must end in .npy, got {args.output}")
    options = {"batch_size": args.batch_size, "max_tokens": args.max_tokens}
    if args.pooling:
        options["pooling"] = args.pooling
    if args.model:
        embedder = Embedder.from_pretrained(args.model, prefix="passage: " if args.prefix is None else args.prefix,
                                            **options)
    else:
        embedder = checkpoint_embedder(args.checkpoint, prefix=args.prefix or "", **options)
    texts = [ex.text for ex in read_examples(args.input, require_labels=False)]
    started = time.perf_counter()
    vectors = embedder.embed(texts, progress=True)
    seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    atomic_write_bytes(args.output, buffer.getvalue())
    atomic_write_json(Path(args.output).with_suffix(".json"), {
        "model": args.model or args.checkpoint, "prefix": embedder.prefix, "pooling": embedder.pooling,
        "input": args.input, "input_sha256": sha256_file(args.input), "rows": int(vectors.shape[0]),
        "dim": int(vectors.shape[1]), "max_tokens": embedder.max_tokens, "seconds": round(seconds, 2)})
    print(f"{len(texts)} texts → {args.output} ({vectors.shape[1]} dims, {len(texts) / seconds:.1f} texts/s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
