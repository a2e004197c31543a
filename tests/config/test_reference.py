"""The config reference page (docs/config_reference.md) is generated from the schema and covers every key."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from paddle_tag.config.loader import all_keys
from paddle_tag.config.reference import PAGE, default_text, field_comments, markdown_text, render, type_text
from paddle_tag.config.schema import Config, ExportConfig, GlobalConfig

REPO = Path(__file__).resolve().parents[2]


def test_committed_page_is_the_generated_one():
    committed = (REPO / PAGE).read_text(encoding="utf-8")
    assert committed == render(), f"{PAGE} is stale: run python tools/config_reference.py and commit it"


def test_every_schema_key_has_a_row_with_a_meaning():
    rows = {}
    for line in render().splitlines():
        match = re.match(r"\| `(\w+\.\w+)` \| (.+?) \| (.+?) \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = match.group(4).strip()
    keys = all_keys()
    assert len(keys) > 100 and list(rows) == keys  # 100 % of the keys, in schema order, each once
    assert not [k for k, meaning in rows.items() if not meaning], "keys without a comment in the schema"


def test_every_section_is_a_heading():
    page = render()
    for f in dataclasses.fields(Config):
        assert f"\n## {f.name}\n" in page


def test_comments_are_read_from_the_source():
    comments = field_comments(GlobalConfig)
    assert comments["max_steps"] == "stop after this many optimizer steps (smoke runs); -1 = no limit"
    # a comment block above a field comes first, then the comment on its line
    export = field_comments(ExportConfig)
    assert export["variants"].startswith("which of EXPORT_VARIANTS to build; fp32 is required.")


def test_types_defaults_and_escaping():
    import typing

    hints = typing.get_type_hints(GlobalConfig)
    assert type_text(hints["device"]) == "cpu | gpu"
    assert type_text(hints["checkpoint"]) == "str | null"
    assert type_text(typing.get_type_hints(ExportConfig)["variants"]) == "list of str"
    assert [default_text(v) for v in (None, True, 5e-5, ["fp32", "int8"], "query: ", "")] == [
        "null", "true", "5.0e-05", "[fp32, int8]", "'query: '", "''"]
    assert markdown_text("a|b <dir> x_y ``code_x``") == r"a\|b &lt;dir&gt; x\_y `code_x`"


def test_tool_check_mode():
    proc = subprocess.run([sys.executable, str(REPO / "tools/config_reference.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
