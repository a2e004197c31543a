"""Config mistakes through the real entry point: each one exits 2 with one ``error:`` line that says where and
what, and nothing is written (no output folder, no checkpoint).

``tools/train.py``'s ``main`` runs in-process under ``run_cli``, the same wrapper the command line uses.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import REPO

from paddle_tag.config.cli import run_cli

BASE = REPO / "configs/text/thucnews_ernie_small.yaml"


def train_tool():
    spec = importlib.util.spec_from_file_location("train_tool", REPO / "tools" / "train.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


CASES = {
    "unknown key": (None, ["Optimizer.learning_rate=1e-3"], "Optimizer.lr"),
    "wrong type": (None, ["Data.batch_size=sixteen"], "Data.batch_size"),
    "bad choice": (None, ["Data.task=multi_lable"], "multi_label"),
    "override without =": (None, ["Data.batch_size"], "Section.key=value"),
    "unknown section": (None, ["Optimiser.lr=1e-3"], "Optimizer"),
    "invalid YAML": (b"Global:\n  epochs: [1, 2\n", [], ":3: invalid YAML"),
    "invalid UTF-8": (b"Global:\n  seed: 4\n  output_dir: out\xff\xfe\n", [], ":3: invalid UTF-8"),
    "not a mapping": (b"- Global\n- Data\n", [], "must be a mapping of sections"),
    "base cycle": (b"_base_: config.yaml\n", [], "includes itself"),
    "missing base": (b"_base_: nowhere.yaml\n", [], "nowhere.yaml"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_mistake_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    content, overrides, expected = CASES[case]
    config = write(tmp_path / "config.yaml", content) if content is not None else BASE
    out = tmp_path / "out"
    argv = ["-c", str(config), "-o", f"Global.output_dir={out}"] if content is None else ["-c", str(config)]
    argv += [a for item in overrides for a in ("-o", item)]
    with pytest.raises(SystemExit) as info:
        run_cli(train_tool().main, argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert not out.exists()


def test_missing_config_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(train_tool().main, ["-c", str(tmp_path / "nope.yaml")])
    assert info.value.code == 2 and "config file not found" in capsys.readouterr().err
