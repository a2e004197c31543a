"""Keep PaddleNLP's INFO chatter out of the user's terminal (warnings and errors still show).

PaddleNLP logs through the standard ``logging`` logger named ``PaddleNLP`` with its own colour handler, and
sets that logger's level to DEBUG when it is first imported, so a level set beforehand does not hold. A
filter on the logger does: it is installed here without importing PaddleNLP, so ``tools/*`` (through
:func:`paddle_tag.config.cli.run_cli`) can call it first thing, and lines such as ``[INFO] - Configuration
saved in …`` from ``save_pretrained`` or ``from_pretrained`` never reach the terminal.
"""
import logging

PADDLENLP_LOGGER = "PaddleNLP"


def _warnings_and_up(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def quiet_paddlenlp() -> None:
    """Drop PaddleNLP's log records below WARNING (its INFO, TRAIN and EVAL lines), once per process."""
    logger = logging.getLogger(PADDLENLP_LOGGER)
    if _warnings_and_up not in logger.filters:
        logger.addFilter(_warnings_and_up)
