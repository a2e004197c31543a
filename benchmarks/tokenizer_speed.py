"""Tokenizer speed and agreement: HF ``tokenizers`` (the export's tokenizer.json) vs PaddleNLP ``ErnieTokenizer``.

    python benchmarks/tokenizer_speed.py --export output/export/thucnews
        [--data data/thucnews/test.jsonl data/poetry/test.jsonl] [--seconds 3]

For each data file: texts per second of PaddleNLP's ``ErnieTokenizer`` (on the same vocab; one batch call,
then truncation to ``max_seq_len``, as paddle_tag did before it tokenised with ``tokenizer.json`` everywhere), of HF
``Tokenizer.encode_batch`` (what ``deploy/`` calls; Rust, parallel over all cores) and of HF
``Tokenizer.encode`` one text at a time (one thread), plus how many texts get different ids: truncated to
the export's ``max_seq_len`` (what the models see) and without truncation (every token of every text).
Prints one Markdown table.
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", default="data/vocab/chinese_bert/vocab.txt",
                        help="the WordPiece vocab PaddleNLP's ErnieTokenizer is built from")
    parser.add_argument("--export", required=True, help="export directory (its tokenizer.json)")
    parser.add_argument("--data", nargs="+", default=["data/thucnews/test.jsonl", "data/poetry/test.jsonl"])
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per tokenizer and file")
    return parser.parse_args()


def rate(fn, n: int, seconds: float) -> float:
    """Texts per second of ``fn()`` (which tokenises ``n`` texts), best pass-average over ``seconds``."""
    fn()  # warm-up
    passes, started = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - started < seconds:
        fn()
        passes += 1
    return n * passes / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    import json

    import numpy as np

    from paddlenlp.transformers import ErnieTokenizer
    from tokenizers import Tokenizer

    from paddle_tag.data.readers import read_examples
    from paddle_tag.data.tokenizer import Encoded

    manifest = json.loads((Path(args.export) / "manifest.json").read_text(encoding="utf-8"))
    max_len = int(manifest["max_seq_len"])
    hf = Tokenizer.from_file(str(Path(args.export) / manifest["tokenizer"]["file"]))  # truncates at max_seq_len
    hf.no_padding()
    hf_full = Tokenizer.from_file(str(Path(args.export) / manifest["tokenizer"]["file"]))
    hf_full.no_truncation()
    hf_full.no_padding()
    paddle_tok = ErnieTokenizer(vocab_file=args.vocab)

    def encode_texts(tok, texts, max_seq_len):  # paddle_tag's truncation (head + closing [SEP]) on PaddleNLP ids
        rows = tok(list(texts), truncation=False, return_token_type_ids=False)["input_ids"]
        return Encoded([r if len(r) <= max_seq_len else r[:max_seq_len - 1] + [r[-1]] for r in rows], 0)

    rows = []
    for path in args.data:
        texts = [e.text for e in read_examples(path)]
        paddle_ids = encode_texts(paddle_tok, texts, max_len).input_ids
        paddle_full = paddle_tok(texts, truncation=False, return_token_type_ids=False)["input_ids"]
        hf_ids = [e.ids for e in hf.encode_batch(texts)]
        hf_full_ids = [e.ids for e in hf_full.encode_batch(texts)]
        rows.append({
            "data": path, "texts": len(texts), "chars": float(np.mean([len(t) for t in texts])),
            "tokens": float(np.mean([len(r) for r in paddle_full])),
            "over": sum(len(r) > max_len for r in paddle_full),
            "paddlenlp": rate(lambda: encode_texts(paddle_tok, texts, max_len), len(texts), args.seconds),
            "hf_batch": rate(lambda: hf.encode_batch(texts), len(texts), args.seconds),
            "hf_single": rate(lambda: [hf.encode(t) for t in texts], len(texts), args.seconds),
            "mismatch": sum(a != b for a, b in zip(hf_ids, paddle_ids)),
            "mismatch_full": sum(a != b for a, b in zip(hf_full_ids, paddle_full)),
        })

    print(f"CPU, {os.cpu_count()} cores, {date.today()}; HF tokenizers encode_batch uses every core "
          f"(RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}), encode and PaddleNLP one; "
          f"truncation at max_seq_len={max_len}")
    print()
    print("| data | texts | mean chars / tokens | PaddleNLP ErnieTokenizer texts/s | HF encode_batch texts/s | "
          "ratio | HF encode (1 thread) texts/s | ratio | texts with different ids (truncated / full) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['texts']:,} | {r['chars']:.1f} / {r['tokens']:.1f} ({r['over']} over {max_len}) | "
              f"{r['paddlenlp']:,.0f} | {r['hf_batch']:,.0f} | {r['hf_batch'] / r['paddlenlp']:.1f}× | "
              f"{r['hf_single']:,.0f} | {r['hf_single'] / r['paddlenlp']:.1f}× | "
              f"{r['mismatch']} / {r['mismatch_full']} of {r['texts']:,} |")


if __name__ == "__main__":
    main()
