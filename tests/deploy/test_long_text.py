"""Format-2 exports in deploy/: texts read as windows of tokens, and a wide part fed code points."""
from __future__ import annotations

import pytest

from deploy.manifest import load_manifest
from deploy.predictor import Predictor
from deploy.providers import trt_profile
from deploy.tokenizer import TextTokenizer, char_codes

FILLER = "的" * 30  # no keyword: 30 tokens push the keyword past the first window of 16


@pytest.fixture(scope="module")
def windowed(kit):
    return kit.make("multi_class", windows={"overlap": 4, "max_windows": 4}, precisions=("fp32", "int8"))


@pytest.fixture(scope="module")
def wide(kit):
    # 湖 means 山水 to the wide part only: the token embedding has no keyword for it
    return kit.make("multi_label", precisions=("fp32",), wide={"ngram_max": 3, "buckets": 65536, "max_chars": 20},
                    wide_chars={"湖": "山水"})


def test_windows_read_a_keyword_past_the_first_window(windowed, mc_export):
    text = FILLER + "球赛"
    (row,) = Predictor(windowed, threads=1).predict([text])
    assert row["tags"] == ["体育"] and row["truncated"] is False
    (cut,) = Predictor(mc_export, threads=1).predict([text])  # one window of 16 tokens never sees 球赛
    assert cut["tags"] != ["体育"] and cut["truncated"] is True


def test_window_cap_is_reported_and_drops_the_end(windowed):
    text = FILLER * 3 + "球赛"  # 92 tokens: more than 4 windows of 14 text tokens sharing 4
    (row,) = Predictor(windowed, threads=1).predict([text])
    assert row["truncated"] is True and row["tags"] != ["体育"]


def test_windows_batch_with_short_texts_without_changing_scores(windowed):
    predictor = Predictor(windowed, threads=1)
    texts = ["股市", FILLER + "球赛", "芯片", "的" * 20 + "新电影"]
    assert predictor.predict(texts) == [predictor.predict([t])[0] for t in texts]
    assert [r["tags"] for r in predictor.predict(texts)] == [["财经"], ["体育"], ["科技"], ["娱乐"]]


def test_int8_windows_agree(windowed):
    texts = ["股市", FILLER + "球赛", "芯片网络", FILLER + "新电影主题歌"]
    fp32 = Predictor(windowed, threads=1).predict(texts)
    int8 = Predictor(windowed, precision="int8", threads=1).predict(texts)
    assert [r["tags"] for r in fp32] == [r["tags"] for r in int8]


def test_tokenizer_windows_overlap_and_pad(windowed):
    manifest = load_manifest(windowed)
    tok = TextTokenizer(manifest.tokenizer_file, manifest.max_seq_len, manifest.pad_id, overlap=4, max_windows=4)
    enc = tok.encode(["你好", "一二三四五六七八九十甲乙丙丁戊己庚辛壬癸"])  # 20 tokens: windows at 0 and 10
    assert enc.input_ids.shape == (2, 2, 16) and enc.truncated == [False, False]
    assert (enc.input_ids[0, 1] == manifest.pad_id).all()  # a missing window is all padding
    first, second = enc.input_ids[1, 0], enc.input_ids[1, 1]
    assert list(first[11:15]) == list(second[1:5])  # the last 4 text tokens of a window open the next one
    assert tok.encode([]).input_ids.shape == (0, 0, 0)


def test_wide_part_gets_the_characters(wide):
    predictor = Predictor(wide, threads=1)
    rows = predictor.predict(["湖", "今天天气不错", "湖" + "的" * 25])
    assert rows[0]["tags"] == ["山水"] and rows[1]["tags"] == []
    # past max_chars (20): flagged; the 湖 at the start is still read
    assert rows[2]["truncated"] is True and rows[0]["truncated"] is False


def test_char_codes_pad_and_cut():
    codes, past = char_codes(["西湖", "a", "一二三四"], max_chars=3, min_len=3)
    assert codes.tolist() == [[0x897F, 0x6E56, 0], [0x61, 0, 0], [0x4E00, 0x4E8C, 0x4E09]]
    assert past == [False, False, True]
    assert char_codes(["😀"], 10, 1)[0].tolist() == [[0x1F600]]


def test_trt_profile_covers_every_input(windowed, wide, mc_export):
    profile = trt_profile(8, 16, load_manifest(windowed))
    assert profile["trt_profile_min_shapes"] == "input_ids:1x1x1"
    assert profile["trt_profile_max_shapes"] == "input_ids:8x4x16"
    both = trt_profile(8, 16, load_manifest(wide))
    assert both["trt_profile_max_shapes"] == "input_ids:8x16,char_ids:8x20"
    assert both["trt_profile_min_shapes"] == "input_ids:1x1,char_ids:1x3"
    assert trt_profile(8, 16, load_manifest(mc_export))["trt_profile_opt_shapes"] == "input_ids:8x16"


def test_a_model_without_the_declared_char_input_is_refused(kit, tmp_path):
    from deploy.manifest import ManifestError

    export = kit.make("multi_label", precisions=("fp32",))  # a one-input model
    doc = kit.read_manifest(export)
    doc.update(format_version=2, windows=None, wide={"ngram_max": 3, "buckets": 10, "max_chars": 50})
    doc["inputs"].append({"name": "char_ids", "dtype": "int64", "shape": ["batch", "chars"]})
    kit.write_manifest(export, doc)
    with pytest.raises(ManifestError, match=r"takes inputs \['input_ids'\], the manifest declares"):
        Predictor(export, threads=1)
