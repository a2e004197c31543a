"""Keep PaddleNLP's INFO chatter out of the user's terminal (warnings and errors still show)."""
import functools


@functools.lru_cache(maxsize=None)
def quiet_paddlenlp() -> None:
    """Lower PaddleNLP's logger to WARNING once per process."""
    from paddlenlp.utils.log import logger

    logger.set_level("WARNING")
