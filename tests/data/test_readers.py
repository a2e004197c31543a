"""Tests of paddle_tag.data.readers and paddle_tag.data.labels: parsing, file:line errors, label encoding."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import Example, detect_format, read_examples
from paddle_tag.errors import DataError, ModelLoadError


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def jl(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------- happy paths


def test_read_jsonl(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [jl({"text": " 中国队夺冠 ", "labels": ["体育"]}),
                                              jl({"text": "股市大涨", "labels": ["股票", "财经", "股票"]})])
    examples = read_examples(path)
    assert [ex.text for ex in examples] == ["中国队夺冠", "股市大涨"]  # stripped
    assert examples[0].labels == ["体育"]
    assert examples[1].labels == ["股票", "财经"]  # duplicates dropped, order kept
    assert [ex.line for ex in examples] == [1, 2]
    assert examples[1].where == f"{path}:2"


def test_read_tsv(tmp_path):
    path = write_lines(tmp_path / "a.tsv", ["体育\t中国队夺冠", " 财经 \t股市大涨"])
    examples = read_examples(path)
    assert examples[0].text == "中国队夺冠" and examples[0].labels == ["体育"]
    assert examples[1].labels == ["财经"] and examples[1].text == "股市大涨"


def test_format_by_extension_and_forced(tmp_path):
    assert detect_format(Path("x.jsonl")) == "jsonl"
    assert detect_format(Path("x.JSON")) == "jsonl"
    assert detect_format(Path("x.tsv")) == "tsv"
    assert detect_format(Path("x.txt")) == "tsv"
    with pytest.raises(DataError, match=r"cannot tell the format.*'\.csv'"):
        detect_format(Path("x.csv"))
    path = write_lines(tmp_path / "data.csv", [jl({"text": "t", "labels": ["a"]})])
    assert read_examples(path, fmt="jsonl")[0].labels == ["a"]


def test_blank_lines_skipped_line_numbers_kept(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", ["", jl({"text": "一", "labels": ["a"]}), "   ", "",
                                              jl({"text": "二", "labels": ["b"]}), "{bad json"])
    with pytest.raises(DataError, match=rf"{path.name}:6: invalid JSON"):
        read_examples(path)
    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    examples = read_examples(path)
    assert [(ex.text, ex.line) for ex in examples] == [("一", 2), ("二", 5)]


def test_unlabeled_allowed_when_not_required(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [jl({"text": "一"}), jl({"text": "二", "labels": []})])
    assert [ex.labels for ex in read_examples(path, require_labels=False)] == [[], []]
    tsv = write_lines(tmp_path / "a.tsv", ["只有文本"])
    assert read_examples(tsv, require_labels=False)[0].text == "只有文本"


# ---------------------------------------------------------------- errors with file:line


@pytest.mark.parametrize("line, message", [
    ("{not json}", r"invalid JSON"),
    (jl({"text": "   ", "labels": ["a"]}), r"empty text"),
    (jl({"labels": ["a"]}), r"missing \"text\""),
    (jl({"text": 3, "labels": ["a"]}), r"\"text\" must be a string"),
    (jl({"text": "好"}), r"missing \"labels\""),
    (jl({"text": "好", "labels": "体育"}), r"\"labels\" must be a list"),
    (jl({"text": "好", "labels": {"a": 1}}), r"\"labels\" must be a list"),
    (jl({"text": "好", "labels": []}), r"\"labels\" is empty"),
    (jl({"text": "好", "labels": ["a", " "]}), r"every label must be a non-empty string"),
    (jl({"text": "好", "labels": ["a", 3]}), r"every label must be a non-empty string"),
    (jl(["text", "labels"]), r"expected a JSON object"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "d.jsonl", [jl({"text": "第一行", "labels": ["a"]}), "", line])
    with pytest.raises(DataError, match=rf"{path.name}:3: {message}"):
        read_examples(path)


@pytest.mark.parametrize("line, message", [
    ("没有制表符", r"expected label<TAB>text"),
    ("\t文本", r"empty label"),
    ("体育\t  ", r"empty text"),
])
def test_tsv_errors_name_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "d.tsv", ["体育\t好", line])
    with pytest.raises(DataError, match=rf"{path.name}:2: {message}"):
        read_examples(path)


def test_empty_file(tmp_path):
    path = write_lines(tmp_path / "e.jsonl", ["", "  "])
    with pytest.raises(DataError, match=r"e\.jsonl: no examples"):
        read_examples(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file not found:.*gone\.jsonl"):
        read_examples(tmp_path / "gone.jsonl")


# ---------------------------------------------------------------- LabelSet


def ex(labels, line=1, source="f.jsonl"):
    return Example(text="x", labels=list(labels), source=source, line=line)


def test_from_examples_sorted_and_unique():
    labels = LabelSet.from_examples([ex(["财经", "体育"]), ex(["b"]), ex(["a", "体育"])])
    assert labels.names == sorted(["财经", "体育", "a", "b"])
    assert labels.index == {name: i for i, name in enumerate(labels.names)}
    assert len(labels) == 4
    # ids do not depend on line order
    assert LabelSet.from_examples([ex(["a", "体育"]), ex(["b"]), ex(["财经", "体育"])]) == labels


def test_duplicate_names_rejected():
    with pytest.raises(ValueError):
        LabelSet(["a", "a"])


def test_check_known_names_unseen_label_and_first_line():
    labels = LabelSet(["体育", "财经"])
    labels.check_known([ex(["体育"]), ex(["财经", "体育"])])  # all known: no error
    dev = [ex(["体育"], 1, "dev.jsonl"), ex(["彩票"], 2, "dev.jsonl"), ex(["彩票", "星座"], 3, "dev.jsonl")]
    with pytest.raises(DataError) as info:
        labels.check_known(dev, split="eval")
    msg = str(info.value)
    assert "2 label(s)" in msg and "the eval data" in msg
    assert "'彩票' (first at dev.jsonl:2)" in msg
    assert "'星座' (first at dev.jsonl:3)" in msg


def test_encode_multi_class():
    labels = LabelSet(["a", "b", "c"])
    ids = labels.encode([ex(["c"]), ex(["a"]), ex(["b"])], "multi_class")
    assert ids.dtype == np.int64 and ids.tolist() == [2, 0, 1]


def test_encode_multi_class_refuses_two_labels():
    labels = LabelSet(["a", "b"])
    with pytest.raises(DataError, match=r"train\.jsonl:7: Data\.task=multi_class needs exactly one label"):
        labels.encode([ex(["a"], 1, "train.jsonl"), ex(["a", "b"], 7, "train.jsonl")], "multi_class")


def test_encode_multi_label_multi_hot():
    labels = LabelSet(["a", "b", "c"])
    hot = labels.encode([ex(["a", "c"]), ex(["b"]), ex([])], "multi_label")
    assert hot.dtype == np.float32 and hot.shape == (3, 3)
    np.testing.assert_array_equal(hot, [[1, 0, 1], [0, 1, 0], [0, 0, 0]])


def test_encode_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        LabelSet(["a", "b"]).encode([ex(["a"])], "ranking")


def test_labelset_save_load_round_trip(tmp_path):
    labels = LabelSet(["体育", "财经", "a"])
    labels.save(tmp_path / "labels.json")
    again = LabelSet.load(tmp_path / "labels.json")
    assert again == labels and again.names == ["体育", "财经", "a"]
    assert json.loads((tmp_path / "labels.json").read_text(encoding="utf-8")) == ["体育", "财经", "a"]


def test_labelset_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="label list not found"):
        LabelSet.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="expected a JSON list"):
        LabelSet.load(tmp_path / "bad.json")


def test_real_thucnews_reads(thucnews_small):
    examples = read_examples(thucnews_small["train"])
    assert len(examples) == 400
    labels = LabelSet.from_examples(examples)
    assert len(labels) == 10 and labels.names == sorted(labels.names)
    ids = labels.encode(examples, "multi_class")
    assert set(ids.tolist()) <= set(range(10))
