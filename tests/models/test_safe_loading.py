"""Weights are read from safetensors only: a crafted pickle never runs, whichever door it is handed to.

Each malicious file below holds a real payload (it writes a marker file when unpickled): the conversion test
with ``--trust-pickle`` shows it does run when unpickled, every other test that it did not.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from helpers import REPO, run_tool, tiny_overrides, with_o

from paddle_tag.config.schema import ModelConfig
from paddle_tag.engine.checkpoint import load_backbone
from paddle_tag.errors import ModelLoadError
from paddle_tag.models import build_model
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.embedder import Embedder
from paddle_tag.weights.pdparams_import import convert_pdparams


class _Payload:
    """Unpickling this calls ``exec``, which writes the marker: what an attacker's ``.pdparams`` does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def malicious_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"embeddings.word_embeddings.weight": _Payload(marker)}, protocol=2))
    return path


@pytest.fixture()
def pickle_model_dir(tiny_bert_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A real model directory (config + tokenizer) whose only weights are a malicious model_state.pdparams."""
    directory = tmp_path / "pickled_model"
    shutil.copytree(tiny_bert_dir, directory)
    (directory / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    malicious_pickle(directory / "model_state.pdparams", marker)
    return directory, marker


def test_payload_runs_when_unpickled_on_purpose(tmp_path):
    marker = tmp_path / "marker"
    bad = malicious_pickle(tmp_path / "evil.pdparams", marker)
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        convert_pdparams(bad, tmp_path / "out.safetensors")
    assert not marker.exists()
    with pytest.raises(ModelLoadError):  # the payload is not a tensor, but it ran while being read
        convert_pdparams(bad, tmp_path / "out.safetensors", trust_pickle=True)
    assert marker.read_text() == "pwned"


def test_text_model_directory_with_only_pickle_weights_is_refused(pickle_model_dir):
    directory, marker = pickle_model_dir
    with pytest.raises(ModelLoadError, match="only pickle-based weights.*convert_weights.py pdparams"):
        build_model(ModelConfig(name="bert", pretrained=str(directory)), 3, 100, 0)
    with pytest.raises(ModelLoadError, match="only pickle-based weights"):
        Embedder.from_pretrained(str(directory))
    assert not marker.exists()


def test_safetensors_win_over_a_pickle_beside_them(tiny_bert_dir, tmp_path):
    directory = tmp_path / "both"
    shutil.copytree(tiny_bert_dir, directory)
    marker = tmp_path / "marker"
    malicious_pickle(directory / "model_state.pdparams", marker)
    reference = Embedder.from_pretrained(str(tiny_bert_dir)).embed(["体育新闻"])
    np.testing.assert_allclose(Embedder.from_pretrained(str(directory)).embed(["体育新闻"]), reference, atol=1e-6)
    assert not marker.exists()


def test_train_and_discover_tools_refuse_the_pickle(pickle_model_dir, thucnews_small, vocab_file, tmp_path):
    directory, marker = pickle_model_dir
    overrides = tiny_overrides(thucnews_small, tmp_path / "out", vocab_file) + ["Model.name=bert",
                                                                               f"Model.pretrained={directory}"]
    proc = run_tool("train.py", "-c", str(REPO / "configs/text/thucnews_ernie_small.yaml"), *with_o(overrides))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "only pickle-based weights" in proc.stderr
    proc = run_tool("discover.py", "-c", str(REPO / "configs/discover/thucnews_e5.yaml"),
                    *with_o([f"Discover.model={directory}", f"Data.train_path={thucnews_small['dev']}",
                             "Discover.stopwords_path=null",
                             f"Global.output_dir={tmp_path / 'discover'}"]))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "only pickle-based weights" in proc.stderr
    assert not marker.exists()


def test_image_backbone_pdparams_is_refused(tmp_path):
    marker = tmp_path / "marker"
    bad = malicious_pickle(tmp_path / "backbone.pdparams", marker)
    with pytest.raises(ModelLoadError, match="pickle-based format.*convert_weights.py pdparams"):
        ImageEncoder("pplcnet_x0_25", pretrained=bad)
    with pytest.raises(ModelLoadError, match="pickle-based format"):
        load_backbone(ImageEncoder("pplcnet_x0_25"), bad)
    assert not marker.exists()


def test_trusted_backbone_pdparams_converts_to_the_same_weights(tmp_path):
    paddle.seed(3)
    src = ImageEncoder("pplcnet_x0_25")
    src.eval()
    paddle.save(src.net.state_dict(), str(tmp_path / "pplcnet.pdparams"))
    proc = run_tool("convert_weights.py", "pdparams", str(tmp_path / "pplcnet.pdparams"),
                    str(tmp_path / "pplcnet.safetensors"))
    assert proc.returncode == 2 and "--trust-pickle" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "pplcnet.safetensors").exists()
    proc = run_tool("convert_weights.py", "pdparams", str(tmp_path / "pplcnet.pdparams"),
                    str(tmp_path / "pplcnet.safetensors"), "--trust-pickle")
    assert proc.returncode == 0, proc.stderr[-2000:]
    enc = ImageEncoder("pplcnet_x0_25", pretrained=tmp_path / "pplcnet.safetensors")
    enc.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_allclose(enc(x).numpy(), src(x).numpy(), rtol=1e-6)


def test_trusted_model_directory_converts_and_loads(tiny_bert_dir, tmp_path):
    from paddlenlp.transformers import BertModel

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, pickled)
    BertModel.from_pretrained(str(tiny_bert_dir)).save_pretrained(str(pickled), safe_serialization=False)
    (pickled / "model.safetensors").unlink()
    assert (pickled / "model_state.pdparams").is_file()
    out = convert_pdparams(pickled, tmp_path / "converted", trust_pickle=True)
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".pdparams", ".safetensors")) == ["model.safetensors"]
    assert json.loads((out / "config.json").read_text()) == json.loads((pickled / "config.json").read_text())
    reference = Embedder.from_pretrained(str(tiny_bert_dir)).embed(["体育新闻", "股市"])
    np.testing.assert_allclose(Embedder.from_pretrained(str(out)).embed(["体育新闻", "股市"]), reference, atol=1e-5)
