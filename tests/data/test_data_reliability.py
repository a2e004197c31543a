"""Bad data files: every bad line is named by ``file:line`` in one run, the tools exit 2 without a traceback,
and nothing is trained on a line that was misread."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import REPO, run_tool, tiny_overrides, with_o

from paddle_tag.data.readers import MAX_REPORTED, read_examples
from paddle_tag.discover.assign import read_new_items
from paddle_tag.discover.pipeline import read_items
from paddle_tag.errors import DataError

CONFIG = str(REPO / "configs/text/thucnews_ernie_small.yaml")


def jl(obj: dict) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def with_bad_utf8(path: Path, good: list[bytes], at: int) -> Path:
    lines = list(good)
    lines.insert(at - 1, b'{"text": "\xe4\xb8\xad\xff\xfe", "labels": ["x"]}\n')  # 中 then two bytes UTF-8 never has
    path.write_bytes(b"".join(lines))
    return path


def assert_exit_2(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr[-3000:]


def test_invalid_utf8_is_file_and_line_in_train_predict_and_assign(thucnews_small, vocab_file, tiny_checkpoint,
                                                                   tmp_path):
    good = thucnews_small["train"].read_bytes().splitlines(keepends=True)[:40]
    train = with_bad_utf8(tmp_path / "train.jsonl", good, at=7)
    overrides = tiny_overrides({"train": train, "dev": thucnews_small["dev"]}, tmp_path / "out", vocab_file)
    assert_exit_2(run_tool("train.py", "-c", CONFIG, *with_o(overrides)), f"{train}:7: invalid UTF-8")
    assert not (tmp_path / "out" / "last").exists()

    new = with_bad_utf8(tmp_path / "new.jsonl", [jl({"text": "股市大涨"}), jl({"text": "球队夺冠"})], at=2)
    assert_exit_2(run_tool("predict.py", "-o", f"Global.checkpoint={tiny_checkpoint}", "--input", str(new)),
                  f"{new}:2: invalid UTF-8 (byte 0xff")
    cfg = tmp_path / "discover.yaml"
    cfg.write_text(f"Global:\n  output_dir: {tmp_path / 'run'}\n", encoding="utf-8")
    assert_exit_2(run_tool("assign.py", "-c", str(cfg), "--input", str(new)), f"{new}:2: invalid UTF-8")


def test_every_bad_line_is_reported_in_one_run(tmp_path):
    lines = [jl({"text": f"标题{i}", "labels": ["体育"]}) for i in range(40)]
    lines[2] = b'{"text": "no labels"}\n'
    lines[9] = b'{"text": "broken", "labels": ["x"]\n'
    lines[30] = b'\xff\xfe\n'
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(lines))
    with pytest.raises(DataError) as info:
        read_examples(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 3 bad lines")
    for where in (f"{path}:3: missing \"labels\"", f"{path}:10: invalid JSON", f"{path}:31: invalid UTF-8"):
        assert where in message
    many = tmp_path / "many.jsonl"
    many.write_bytes(b"not json\n" * (MAX_REPORTED + 7))
    with pytest.raises(DataError, match=rf"{MAX_REPORTED + 7} bad lines(.|\n)*and 7 more"):
        read_examples(many)


def test_tsv_with_an_extra_column_is_refused_not_glued_to_the_text(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("体育\t中国队夺冠\n财经\t股市\t大涨\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv:2: 3 tab-separated columns, expected 2"):
        read_examples(path)
    path.write_text("中国队夺冠\n股市\t大涨\t了\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv:2: 3 tab-separated columns"):
        read_examples(path, require_labels=False)


def test_lone_surrogates_and_a_bom(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "abc\\ud800", "labels": ["x"]}\n{"text": "ok", "labels": ["\\udfff"]}\n',
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl:1: text holds a lone surrogate \(U\+D800(.|\n)*:2: a label"):
        read_examples(path)
    path.write_bytes(b"\xef\xbb\xbf" + jl({"text": "带 BOM 的第一行", "labels": ["体育"]}))
    assert read_examples(path)[0].text == "带 BOM 的第一行"


@pytest.mark.parametrize("bad_id", [{"x": 1}, [1], 1.5, True, "", "\ud800"])
def test_item_ids_are_strings_or_integers(tmp_path, bad_id):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"text": "皇马获胜", "id": bad_id}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"items\.jsonl:1: "):
        read_new_items(path)
    with pytest.raises(DataError, match=r"items\.jsonl:1: "):
        read_items(path)
    path.write_text(json.dumps({"text": "皇马获胜", "id": 7}) + "\n" + json.dumps({"text": "降准", "id": "a-7"}) + "\n",
                    encoding="utf-8")
    assert [item.item_id for item in read_new_items(path)] == ["7", "a-7"]
