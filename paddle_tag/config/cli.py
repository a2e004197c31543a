"""What every ``tools/*.py`` script shares: ``-c/-o`` parsing and turning user errors into a clean exit."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable, Optional, Sequence

from paddle_tag.config import Config, load_config
from paddle_tag.errors import PaddleTagError
from paddle_tag.utils.quiet import quiet_paddlenlp


def config_parser(description: str, config_required: bool = True) -> argparse.ArgumentParser:
    """An argument parser with PaddleClas-style ``-c config.yaml`` and repeatable ``-o Section.key=value``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=config_required, help="YAML config file")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="Section.key=value",
                        help="override one config key (repeatable), e.g. -o Optimizer.lr=3e-5")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.override)


def run_cli(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run ``main``; a :class:`PaddleTagError` prints ``error: ...`` (no traceback) and exits with 2."""
    warnings.filterwarnings("ignore", category=UserWarning)  # paddle/setuptools import chatter
    quiet_paddlenlp()  # PaddleNLP's colour INFO lines (save_pretrained, from_pretrained) are not ours to print
    try:
        code = main(argv)
    except PaddleTagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; resume with -o Global.resume=true", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
