"""Hugging Face BERT / ERNIE import (``paddle_tag.weights.hf_bert``): the name mapping against PaddleNLP's own,
round trips, whole folders converted and reloaded with PaddleNLP, and the refusals (pickles, bad shapes, ...)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertConfig, BertModel, BertTokenizer, ErnieConfig, ErnieModel
from safetensors.numpy import load_file, save_file

from paddle_tag.errors import ModelLoadError
from paddle_tag.data.tokenizer import load_tokenizer
from paddle_tag.utils.io import sha256_file
from paddle_tag.weights import hf_bert

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心"
         "多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头")
VOCAB = SPECIALS + list(CHARS) + ["，", "。", "a", "##b"]
# real sentences; 朋 友 品 月 亮 今 校 are not in the tiny vocabulary → [UNK]
TEXTS = ["中国人的大学生，我们都是好朋友。", "他在家里看文学作品", "天上有一个小月亮", "今天我们去学校"]
TINY = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, layer_norm_eps=1e-12, pad_token_id=0)
ERNIE_EXTRA = dict(type_vocab_size=4, use_task_id=True, task_type_vocab_size=3)
TASK_TYPE = "embeddings.task_type_embeddings.weight"


def tiny_model(model_type: str, seed: int = 0):
    """A tiny PaddleNLP model with every tensor random (so that a swapped or untransposed tensor shows)."""
    with paddle.utils.unique_name.guard():
        if model_type == "bert":
            model = BertModel(BertConfig(**TINY, type_vocab_size=2))
        else:
            model = ErnieModel(ErnieConfig(**TINY, **ERNIE_EXTRA))
    rng = np.random.default_rng(seed)
    state = {k: rng.normal(0.0, 0.5, v.shape).astype(np.float32) for k, v in model.state_dict().items()}
    model.set_state_dict(state)
    model.eval()
    return model, state


def paddlenlp_mappings(architecture: str = "BertModel") -> list[tuple[str, str, bool]]:
    """PaddleNLP's own Hugging Face → Paddle BERT mapping: (HF name, Paddle name, transpose)."""
    config = BertConfig(**TINY, architectures=[architecture])
    return [(m.source_name, m.target_name, m.should_transpose()) for m in BertModel._get_name_mappings(config)]


def write_hf_dir(root: Path, model_type: str, state: dict, *, drop: tuple[str, ...] = (), extra: dict | None = None,
                 shards: int = 1, config: dict | None = None) -> Path:
    """A Hugging Face task-model folder written with PaddleNLP's mapping (independent of hf_bert)."""
    root.mkdir(parents=True, exist_ok=True)
    prefix = f"{model_type}."
    tensors = {prefix + hf: np.ascontiguousarray(state[pd].T if t else state[pd])
               for hf, pd, t in paddlenlp_mappings() if not pd.startswith(drop)}
    if TASK_TYPE in state:
        tensors[prefix + TASK_TYPE] = state[TASK_TYPE]
    tensors.update(extra or {})
    names = sorted(tensors)
    if shards == 1:
        save_file(tensors, str(root / "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i in range(shards):
            part = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({n: tensors[n] for n in names[i::shards]}, str(root / part), metadata={"format": "pt"})
            weight_map.update({n: part for n in names[i::shards]})
        (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    hf_config = {"architectures": [f"{model_type.capitalize()}ForMaskedLM"], "model_type": model_type,
                 "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                 "initializer_range": 0.02, "position_embedding_type": "absolute", "type_vocab_size": 2,
                 "transformers_version": "4.40.0", **{k: v for k, v in TINY.items()},
                 **(ERNIE_EXTRA if model_type == "ernie" else {}), **(config or {})}
    (root / "config.json").write_text(json.dumps(hf_config, indent=2))
    (root / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    added = {"__type": "AddedToken", "content": "[UNK]", "lstrip": False, "rstrip": False, "normalized": False}
    (root / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizerFast",
                                                            "do_lower_case": True, "unk_token": added}))
    (root / "README.md").write_text("---\nlanguage: zh\nlicense: apache-2.0\n---\n# tiny\n")
    return root


def sequence_output(model, ids: list[int]) -> np.ndarray:
    with paddle.no_grad():
        return model(paddle.to_tensor([ids], dtype="int64"))[0].numpy()


def test_mapping_agrees_with_paddlenlp():
    _, state = tiny_model("bert")
    hf = hf_bert.hf_state_dict(state, "bert")
    mappings = paddlenlp_mappings()
    assert {m[0] for m in mappings} == set(hf) and {m[1] for m in mappings} == set(state)
    for hf_name, pd_name, transpose in mappings:
        np.testing.assert_array_equal(hf[hf_name], state[pd_name].T if transpose else state[pd_name])
    # the other direction, on the prefixed names PaddleNLP gives a task model (its head is dropped)
    task = paddlenlp_mappings("BertForSequenceClassification")
    hf_task = {src: state[dst.removeprefix("bert.")].T if t else state[dst.removeprefix("bert.")]
               for src, dst, t in task if src != "classifier.weight"}
    hf_task["classifier.weight"] = np.zeros((3, 32), np.float32)
    pd, dropped = hf_bert.paddle_state_dict(hf_task, "bert")
    assert dropped == ["classifier.weight"] and set(pd) == set(state)
    assert all(src.startswith("bert.") for src in hf_task if src != "classifier.weight")
    for name, value in state.items():
        np.testing.assert_array_equal(pd[name], value, err_msg=name)


def test_ernie_mapping_is_bert_mapping_plus_task_type():
    _, state = tiny_model("ernie")
    config = ErnieConfig(**TINY, **ERNIE_EXTRA, architectures=["ErnieModel"])
    try:  # PaddleNLP 2.8.1 has no ERNIE mapping; ErnieModel has BertModel's tensors plus the task type table
        mappings = [(m.source_name, m.target_name, m.should_transpose()) for m in ErnieModel._get_name_mappings(config)]
    except NotImplementedError:
        mappings = paddlenlp_mappings() + [(TASK_TYPE, TASK_TYPE, False)]
    hf = hf_bert.hf_state_dict(state, "ernie")
    assert {m[0] for m in mappings} == set(hf) and {m[1] for m in mappings} == set(state)
    for hf_name, pd_name, transpose in mappings:
        np.testing.assert_array_equal(hf[hf_name], state[pd_name].T if transpose else state[pd_name])
    with pytest.raises(ModelLoadError, match="task_type_embeddings"):  # not a BERT tensor
        hf_bert.paddle_state_dict({TASK_TYPE: state[TASK_TYPE]}, "bert")


@pytest.mark.parametrize("model_type", ["bert", "ernie"])
def test_round_trip(model_type):
    _, state = tiny_model(model_type)
    hf = hf_bert.hf_state_dict(state, model_type)
    assert hf["encoder.layer.0.intermediate.dense.weight"].shape == (64, 32)  # [out, in]
    assert hf["encoder.layer.1.output.dense.weight"].shape == (32, 64)
    assert hf["embeddings.word_embeddings.weight"].shape == (len(VOCAB), 32)  # embeddings never transposed
    back, dropped = hf_bert.paddle_state_dict({f"{model_type}.{k}": v for k, v in hf.items()}, model_type)
    assert dropped == [] and set(back) == set(state)
    for name, value in state.items():
        assert back[name].dtype == np.float32 and back[name].flags.c_contiguous
        np.testing.assert_array_equal(back[name], value, err_msg=name)


def check_converted(out: Path, src: Path, model_type: str, original) -> dict:
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "provenance.json", "vocab.txt",
            "tokenizer_config.json"} <= names
    assert not list(out.rglob("*.pdparams")) and not list(out.parent.glob(f".{out.name}.*"))
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["source"]["kind"] == "huggingface" and provenance["source"]["path"] == str(src.resolve())
    assert provenance["source"]["files"]["config.json"] == sha256_file(src / "config.json")
    assert provenance["license"] == "apache-2.0"
    assert {n: sha256_file(out / n) for n in names - {"provenance.json"}} == provenance["files"]
    assert provenance["dropped_tensors"] == ["cls.predictions.bias"]
    model_cls = BertModel if model_type == "bert" else ErnieModel
    loaded = model_cls.from_pretrained(str(out))
    loaded.eval()
    assert {ln._epsilon for ln in loaded.sublayers() if isinstance(ln, paddle.nn.LayerNorm)} == {1e-12}
    tokenizer = load_tokenizer(str(out), None).backend
    paddle_tok = BertTokenizer.from_pretrained(str(out))
    unk = VOCAB.index("[UNK]")
    for text in TEXTS:
        ids = tokenizer.encode(text).ids
        assert ids == paddle_tok(text)["input_ids"] and ids[0] == VOCAB.index("[CLS]")
        np.testing.assert_allclose(sequence_output(loaded, ids), sequence_output(original, ids), rtol=0, atol=1e-6)
    assert unk in tokenizer.encode(TEXTS[-1]).ids
    return provenance


def test_convert_bert_directory(tmp_path):
    original, state = tiny_model("bert", seed=3)
    head = {"cls.predictions.bias": np.zeros(len(VOCAB), np.float32)}
    src = write_hf_dir(tmp_path / "hf", "bert", state, extra=head)
    out = hf_bert.convert_hf_directory(src, tmp_path / "out")
    provenance = check_converted(out, src, "bert", original)
    assert provenance["initialised_to_zero"] == [] and provenance["model_type"] == "bert"
    pooled = BertModel.from_pretrained(str(out))
    np.testing.assert_array_equal(pooled.pooler.dense.weight.numpy(), state["pooler.dense.weight"])


def test_convert_ernie_directory_sharded_without_pooler(tmp_path):
    original, state = tiny_model("ernie", seed=4)
    head = {"cls.predictions.bias": np.zeros(len(VOCAB), np.float32)}
    src = write_hf_dir(tmp_path / "hf", "ernie", state, drop=("pooler.",), extra=head, shards=2)
    vocab_only = tmp_path / "vocab_only"  # a tokenizer.json in the source is copied as it is
    vocab_only.mkdir()
    (vocab_only / "vocab.txt").write_bytes((src / "vocab.txt").read_bytes())
    load_tokenizer(str(vocab_only), None).save(src, max_seq_len=64)
    out = hf_bert.convert_hf_directory(src, tmp_path / "out")
    assert (out / "tokenizer.json").read_bytes() == (src / "tokenizer.json").read_bytes()
    provenance = check_converted(out, src, "ernie", original)
    assert provenance["initialised_to_zero"] == ["pooler.dense.bias", "pooler.dense.weight"]
    assert set(provenance["source"]["files"]) >= {"model-00001-of-00002.safetensors", "model.safetensors.index.json"}
    config = json.loads((out / "config.json").read_text())
    assert config["use_task_id"] is True and config["task_id"] == 0 and config["type_vocab_size"] == 4


def test_pickle_only_directory_is_refused_without_unpickling(tmp_path):
    src = tmp_path / "hf"
    src.mkdir()
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return open, (str(marker), "w")

    (src / "pytorch_model.bin").write_bytes(pickle.dumps(Trap()))
    (src / "config.json").write_text(json.dumps({"model_type": "bert", **TINY}))
    with pytest.raises(ModelLoadError, match="pickle files are never loaded"):
        hf_bert.convert_hf_directory(src, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_bad_tensors_are_named(tmp_path):
    _, state = tiny_model("bert")
    bad = dict(state, **{"encoder.layers.0.self_attn.q_proj.weight": np.zeros((32, 31), np.float32)})
    with pytest.raises(ModelLoadError, match=r"encoder\.layers\.0\.self_attn\.q_proj\.weight has shape \[32, 31\]"):
        hf_bert.convert_hf_directory(write_hf_dir(tmp_path / "shape", "bert", bad), tmp_path / "out")
    odd = {"bert.encoder.layer.0.attention.self.rotary.weight": np.zeros((4, 4), np.float32)}
    with pytest.raises(ModelLoadError, match=r"bert\.encoder\.layer\.0\.attention\.self\.rotary\.weight"):
        hf_bert.convert_hf_directory(write_hf_dir(tmp_path / "odd", "bert", state, extra=odd), tmp_path / "out")
    with pytest.raises(ModelLoadError, match=r"missing: \['encoder\.layers\.1\.norm2\.bias'\]"):
        hf_bert.convert_hf_directory(write_hf_dir(tmp_path / "missing", "bert", state,
                                                  drop=("encoder.layers.1.norm2.bias",)), tmp_path / "out")
    (tmp_path / "odd" / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        hf_bert.convert_hf_directory(tmp_path / "odd", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"model_type": "roberta"}, "offset 2"), ({"model_type": "xlm-roberta"}, "offset 2"),
    ({"model_type": "deberta-v2"}, "not supported"), ({"position_embedding_type": "relative_key"}, "absolute"),
    ({"hidden_act": "gelu_new"}, "hidden_act"), ({"model_type": "ernie", "layer_norm_eps": 1e-5}, "1e-12"),
    ({"model_type": None, "architectures": ["GPT2LMHeadModel"]}, "no model_type"),
])
def test_paddle_config_refusals(change, message):
    config = {"model_type": "bert", **TINY, **change}
    with pytest.raises(ModelLoadError, match=message):
        hf_bert.paddle_config(config)


def test_paddle_config_values():
    model_type, kwargs = hf_bert.paddle_config({"architectures": ["ErnieForMaskedLM"], **TINY, **ERNIE_EXTRA})
    assert model_type == "ernie" and kwargs["use_task_id"] and kwargs["task_type_vocab_size"] == 3
    model_type, kwargs = hf_bert.paddle_config({"model_type": "bert", **TINY, "layer_norm_eps": 1e-7})
    assert model_type == "bert" and kwargs["layer_norm_eps"] == 1e-7 and kwargs["type_vocab_size"] == 2
    BertConfig(**kwargs)  # every key is a BertConfig argument


def test_interrupted_write_keeps_previous_directory(tmp_path, monkeypatch):
    _, state = tiny_model("bert")
    src = write_hf_dir(tmp_path / "hf", "bert", state)
    out = hf_bert.convert_hf_directory(src, tmp_path / "out")
    before = {p.name: sha256_file(p) for p in out.iterdir()}

    def broken_save(self, save_dir, **kwargs):
        Path(save_dir, "model.safetensors").write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(BertModel, "save_pretrained", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        hf_bert.convert_hf_directory(src, out)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".out.*"))


def test_half_precision_tensors_become_float32(tmp_path):
    import ml_dtypes

    values = np.array([[1.5, -2.0], [0.25, 3.0]], dtype=np.float32)
    for dtype in (np.float16, ml_dtypes.bfloat16):
        path = tmp_path / f"{np.dtype(dtype).name}.safetensors"
        save_file({"bert.pooler.dense.weight": values.astype(dtype)}, str(path))
        state, dropped = hf_bert.paddle_state_dict(load_file(str(path)), "bert")
        assert state["pooler.dense.weight"].dtype == np.float32 and dropped == []
        np.testing.assert_array_equal(state["pooler.dense.weight"], values.T)
