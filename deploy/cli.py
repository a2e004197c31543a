"""Shared command-line pieces: the model arguments, user errors → ``error: ...`` and exit code 2."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from deploy import DeployError
from deploy.manifest import PRECISIONS
from deploy.providers import DEVICES

EXIT_USER_ERROR = 2


def _int_at_least(minimum: int):
    """An argparse type: an int >= ``minimum``."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {number}")
        return number
    return parse


positive = _int_at_least(1)
non_negative = _int_at_least(0)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model-dir --device --precision --threads --top-k --trt --trt-cache --gpu-id``."""
    parser.add_argument("--model-dir", required=True, help="export directory (with manifest.json)")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="cpu, or gpu (needs onnxruntime-gpu and CUDA; never falls back to cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="which exported model: fp32, fp16 (GPU) or int8 (CPU)")
    parser.add_argument("--threads", type=non_negative, default=None,
                        help="CPU intra-op threads (default/0: one per physical core)")
    parser.add_argument("--top-k", type=positive, default=None,
                        help="scores returned per text (tagger, default 5); items per history (recommender, "
                             "default 10)")
    parser.add_argument("--trt", action="store_true",
                        help="GPU: try TensorRT first (fp16 engine with --precision fp16)")
    parser.add_argument("--trt-cache", default=None, help="GPU + --trt: directory to cache TensorRT engines")
    parser.add_argument("--gpu-id", type=non_negative, default=0, help="GPU: CUDA device id")


def setup_logging(level: str = "info") -> None:
    """Plain ``LEVEL name: message`` logging to stderr."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def run_cli(main: Callable[[], int]) -> int:
    """Run ``main``; a :class:`DeployError` prints ``error: ...`` to stderr and returns 2."""
    try:
        return main()
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
