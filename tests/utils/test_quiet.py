"""PaddleNLP's INFO lines stay out of the terminal once quiet_paddlenlp ran, even when called before the import."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from paddle_tag.utils.quiet import quiet_paddlenlp
quiet_paddlenlp()  # before paddlenlp is imported, as run_cli does: its import resets the level to DEBUG
quiet_paddlenlp()  # idempotent
from paddlenlp.utils.log import logger
logger.info("hidden-info-line")
logger.warning("shown-warning-line")
import logging
assert len(logging.getLogger("PaddleNLP").filters) == 1
"""


def test_info_hidden_warning_shown():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "hidden-info-line" not in out
    assert "shown-warning-line" in out
