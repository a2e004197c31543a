"""Tests of paddle_tag.config.validate: the checks that span sections, with and without ``training``."""
from __future__ import annotations

import pytest

from paddle_tag.config import load_config, validate
from paddle_tag.errors import ConfigError

# validate() only checks that data paths are set; whether the files exist is the readers' business
TRAIN = ["Data.train_path=train.jsonl", "Data.eval_path=dev.jsonl"]
IMAGE = ["Data.modality=image", "Model.name=resnet18", "Data.train_path=train.npz", "Data.eval_path=dev.npz",
         "Data.batch_size=16"]
SIMCLR, MOCO = [*IMAGE, "Pretrain.method=simclr"], [*IMAGE, "Pretrain.method=moco"]


def check(*overrides: str, training: bool = False) -> None:
    validate(load_config(None, overrides), training=training)


# ---------------------------------------------------------------- always checked


@pytest.mark.parametrize("overrides, message", [
    (["Model.name=resnet18"], r"Model\.name=resnet18 is an image backbone but Data\.modality=text: set "
                              r"Data\.modality=image \(with \.npz data paths\) or a text encoder \(ernie, bert\)"),
    (["Data.modality=image"], r"Data\.modality=image needs an image backbone as Model\.name "
                              r"\(resnet18, mobilenetv3_small_x0_35, pplcnet_x0_25\), got ernie"),
    (["Pretrain.method=moco"], r"Pretrain\.method=moco pretrains images \(Data\.modality=image\); text uses simcse"),
    (["Pretrain.method=simclr"], r"Pretrain\.method=simclr pretrains images"),
    ([*IMAGE, "Pretrain.method=simcse"], r"Pretrain\.method=simcse pretrains text; images use simclr or moco"),
    (["Data.max_seq_len=600"], r"Data\.max_seq_len=600 exceeds Model\.max_position=512"),
    (["Data.max_seq_len=65", "Model.max_position=64"], r"Data\.max_seq_len=65 exceeds Model\.max_position=64"),
])
def test_sections_that_disagree_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(*overrides)
    with pytest.raises(ConfigError, match=message):
        check(*TRAIN, *overrides, training=True)


@pytest.mark.parametrize("overrides", [
    [], ["Model.name=bert"], ["Pretrain.method=simcse"], IMAGE, SIMCLR, MOCO,
    [*IMAGE, "Model.name=mobilenetv3_small_x0_35"],
    ["Data.max_seq_len=512"],  # = max_position
    ["Data.max_seq_len=600", "Model.pretrained=ernie-3.0-medium-zh"],  # a pretrained encoder brings its positions
    [*IMAGE, "Data.max_seq_len=600"],  # images have no token positions
])
def test_agreeing_sections_pass(overrides):
    check(*overrides)


# ---------------------------------------------------------------- training only


@pytest.mark.parametrize("overrides, message", [
    ([], r"Data\.train_path is required for training"),
    (["Data.train_path=train.jsonl"], r"Data\.eval_path is required for training"),
    (["Pretrain.method=simcse"], r"Data\.train_path is required for training"),
    (["Data.eval_path=dev.jsonl", "Pretrain.method=simcse"], r"Data\.train_path is required for training"),
    ([*IMAGE, "Data.eval_path=null"], r"Data\.eval_path is required for training"),
])
def test_training_needs_the_data_paths(overrides, message):
    check(*overrides)  # not a training run: nothing to read
    with pytest.raises(ConfigError, match=message):
        check(*overrides, training=True)


def test_pretraining_needs_no_eval_split():
    check("Data.train_path=train.jsonl", "Pretrain.method=simcse", training=True)
    check(*SIMCLR, "Data.eval_path=null", training=True)


def test_synonym_replace_needs_an_existing_synonym_table(tmp_path):
    simcse = [*TRAIN, "Pretrain.method=simcse", "Pretrain.synonym_replace=0.5"]
    with pytest.raises(ConfigError, match=r"Pretrain\.synonym_replace needs Pretrain\.synonyms_path, a synonym "
                                          r"table \(python tools/prepare_data\.py synonyms\); got None"):
        check(*simcse, training=True)
    missing = tmp_path / "missing.tsv"
    with pytest.raises(ConfigError, match=rf"needs Pretrain\.synonyms_path.*{missing.name}"):
        check(*simcse, f"Pretrain.synonyms_path={missing}", training=True)
    table = tmp_path / "synonyms.tsv"
    table.write_text("快\t迅速\n", encoding="utf-8")
    check(*simcse, f"Pretrain.synonyms_path={table}", training=True)
    check(*simcse)  # not training: the table is not needed yet
    check(*TRAIN, "Pretrain.synonym_replace=0.5", training=True)  # fine-tuning does not augment


@pytest.mark.parametrize("method", [["Pretrain.method=simcse", *TRAIN], SIMCLR, MOCO])
def test_knn_monitor_needs_both_paths_or_neither(method):
    message = r"the kNN monitor needs both Pretrain\.knn_train_path and Pretrain\.knn_eval_path"
    for half in ("Pretrain.knn_train_path=bank", "Pretrain.knn_eval_path=queries"):
        with pytest.raises(ConfigError, match=message):
            check(*method, half, training=True)
        check(*method, half)
    check(*method, training=True)
    check(*method, "Pretrain.knn_train_path=bank", "Pretrain.knn_eval_path=queries", training=True)


@pytest.mark.parametrize("overrides, message", [
    ([*SIMCLR, "Data.batch_size=1"], r"contrastive pretraining needs Data\.batch_size >= 2 \(negatives, "
                                     r"BatchNorm\), got 1"),
    ([*MOCO, "Data.batch_size=1"], r"contrastive pretraining needs Data\.batch_size >= 2"),
    ([*SIMCLR, "Global.amp=O2"], r"image pretraining supports Global\.amp O1 or null, not O2"),
    ([*MOCO, "Pretrain.bn_splits=3"], r"Pretrain\.bn_splits=3 must divide Data\.batch_size=16 into sub-batches of "
                                      r"at least 2 images"),
    ([*MOCO, "Pretrain.bn_splits=16"], r"Pretrain\.bn_splits=16 must divide Data\.batch_size=16"),
    ([*MOCO, "Data.batch_size=6", "Pretrain.bn_splits=4"], r"Pretrain\.bn_splits=4 must divide Data\.batch_size=6"),
])
def test_image_pretraining_batches(overrides, message):
    check(*overrides)
    with pytest.raises(ConfigError, match=message):
        check(*overrides, training=True)


@pytest.mark.parametrize("overrides", [
    [*SIMCLR, "Data.batch_size=2", "Global.amp=O1"],
    [*MOCO, "Pretrain.bn_splits=8"],  # 8 sub-batches of 2
    [*MOCO, "Data.batch_size=6", "Pretrain.bn_splits=3"],
    [*SIMCLR, "Pretrain.bn_splits=3"],  # a MoCo key: SimCLR ignores it
    [*IMAGE, "Data.batch_size=1", "Global.amp=O2"],  # tagging images, not contrastive
])
def test_image_runs_that_fit_pass(overrides):
    check(*overrides, training=True)


def test_prune_vocab_needs_a_pretrained_model():
    with pytest.raises(ConfigError, match=r"Model\.prune_vocab needs Model\.pretrained to be a local model directory"):
        check(*TRAIN, "Model.prune_vocab=true", training=True)
    check(*TRAIN, "Model.prune_vocab=true")
    check(*TRAIN, "Model.prune_vocab=true", "Model.pretrained=models/e5", training=True)


def test_defaults_need_only_the_data_paths():
    check()
    check(*TRAIN, training=True)
