"""Tests of paddle_tag.config.schema: each section's value ranges (``__post_init__``), Export.variants as a list,
and the names (encoders, backbones, methods) defined once."""
from __future__ import annotations

import typing
from pathlib import Path

import pytest

from paddle_tag.config import (
    EXPORT_VARIANTS,
    IMAGE_BACKBONES,
    IMAGE_METHODS,
    SEQUENCE_MODELS,
    MIN_IMAGE_SIZE,
    TEXT_ENCODERS,
    TEXT_METHODS,
    Config,
    ExportConfig,
    ModelConfig,
    OptimizerConfig,
    PretrainConfig,
    load_config,
    save_config,
)
from paddle_tag.config.recommend_schema import TWO_TOWER_MODELS
from paddle_tag.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PROBABILITIES = ("word_deletion", "word_swap", "synonym_replace", "char_mask")
MOCO = "Pretrain.method=moco"


# ---------------------------------------------------------------- ranges refused at load time


@pytest.mark.parametrize("overrides, message", [
    (["Global.epochs=0"], r"Global\.epochs must be positive, got 0"),
    (["Global.eval_every=-2"], r"Global\.eval_every must be >= -1 \(-1: only at the end\), got -2"),
    (["Global.log_every=0"], r"Global\.log_every must be positive, got 0"),
    (["Data.batch_size=0"], r"Data\.batch_size must be positive, got 0"),
    (["Data.eval_batch_size=-1"], r"Data\.eval_batch_size must be positive, got -1"),
    (["Data.max_seq_len=0"], r"Data\.max_seq_len must be positive, got 0"),
    (["Data.image_size=7"], r"Data\.image_size must be >= 8, got 7"),
    (["Optimizer.lr=0"], r"Optimizer\.lr must be positive, got 0"),
    (["Optimizer.lr=-1e-3"], r"Optimizer\.lr must be positive, got -0\.001"),
    (["Optimizer.warmup_ratio=1"], r"Optimizer\.warmup_ratio must be in \[0, 1\), got 1"),
    (["Optimizer.warmup_ratio=-0.1"], r"Optimizer\.warmup_ratio must be in \[0, 1\), got -0\.1"),
    (["Optimizer.head_lr_scale=0"], r"Optimizer\.head_lr_scale must be positive, got 0"),
    (["Optimizer.wide_lr=-1"], r"Optimizer\.wide_lr must be positive, got -1"),
    (["Pretrain.temperature=0"], r"Pretrain\.temperature must be positive, got 0"),
    *[([f"Pretrain.projection_{key}=-1"], r"Pretrain\.projection_layers / projection_hidden / projection_dim "
                                          r"must be >= 0") for key in ("layers", "hidden", "dim")],
    *[([f"Pretrain.{name}={p}"], rf"Pretrain\.{name} is a probability in \[0, 1\], got {p}")
      for name in PROBABILITIES for p in (1.5, -0.1)],
    *[([f"Pretrain.{key}={value}"], r"Pretrain\.knn_max_items must be >= 0, knn_k >= 1 and knn_temperature > 0")
      for key, value in (("knn_max_items", -1), ("knn_k", 0), ("knn_temperature", 0))],
    ([MOCO, "Pretrain.queue_size=0"], r"MoCo needs Pretrain\.queue_size >= 1 and Pretrain\.momentum in \[0, 1\], "
                                      r"got 0 and 0\.99"),
    ([MOCO, "Pretrain.momentum=1.5"], r"MoCo needs Pretrain\.queue_size >= 1 and Pretrain\.momentum in \[0, 1\]"),
    ([MOCO, "Pretrain.momentum=-0.1"], r"Pretrain\.momentum in \[0, 1\], got 4096 and -0\.1"),
    ([MOCO, "Pretrain.bn_splits=0"], r"MoCo needs Pretrain\.bn_splits >= 1, got 0"),
    (["Export.opset=12"], r"Export\.opset=12 must be between 13 and 19"),
    (["Export.opset=20"], r"Export\.opset=20 must be between 13 and 19"),
    (["Export.fp32_atol=-1e-4"], r"Export\.fp32_atol must be >= 0, got -0\.0001"),
    (["Export.parity_samples=0"], r"Export\.parity_samples must be positive, got 0"),
])
def test_out_of_range_value_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize("overrides", [
    ["Global.epochs=1", "Global.eval_every=-1", "Global.log_every=1"],
    ["Global.eval_every=0"],
    ["Data.batch_size=1", "Data.eval_batch_size=1", "Data.max_seq_len=3", f"Data.image_size={MIN_IMAGE_SIZE}"],
    ["Optimizer.lr=1e-6", "Optimizer.warmup_ratio=0", "Optimizer.head_lr_scale=0.1", "Optimizer.wide_lr=0.01"],
    ["Optimizer.warmup_ratio=0.99"],
    ["Pretrain.projection_layers=0", "Pretrain.projection_hidden=0", "Pretrain.projection_dim=0"],
    [f"Pretrain.{name}=0" for name in PROBABILITIES],
    [f"Pretrain.{name}=1" for name in PROBABILITIES],
    ["Pretrain.knn_max_items=0", "Pretrain.knn_k=1", "Pretrain.knn_temperature=1e-3"],
    [MOCO, "Pretrain.queue_size=1", "Pretrain.momentum=0", "Pretrain.bn_splits=1"],
    [MOCO, "Pretrain.momentum=1"],
    ["Export.opset=13", "Export.fp32_atol=0", "Export.parity_samples=1"],
    ["Export.opset=19"],
])
def test_values_at_the_edges_of_their_range_pass(overrides):
    load_config(None, overrides)


def test_moco_keys_are_checked_only_for_moco():
    for method in ("null", "simcse", "simclr"):
        cfg = load_config(None, [f"Pretrain.method={method}", "Pretrain.queue_size=0", "Pretrain.momentum=2",
                                 "Pretrain.bn_splits=0"])
        assert cfg.Pretrain.queue_size == 0


def test_sections_check_ranges_when_built_directly_too():
    with pytest.raises(ConfigError, match=r"Optimizer\.lr must be positive"):
        OptimizerConfig(lr=0.0)
    with pytest.raises(ConfigError, match=r"Pretrain\.char_mask is a probability"):
        PretrainConfig(char_mask=2.0)


def test_wide_lr_default_is_the_recipes_value():
    assert OptimizerConfig().wide_lr == 3.0
    wide_recipes = [p for p in (REPO / "configs").rglob("*.yaml") if "_base_" not in p.parts
                    and load_config(p).Model.wide]
    assert wide_recipes and all(load_config(p).Optimizer.wide_lr == 3.0 for p in wide_recipes)


# ---------------------------------------------------------------- Export.variants


def test_variants_default_is_every_variant():
    assert load_config().Export.variants == list(EXPORT_VARIANTS) == ["fp32", "fp16", "int8"]


def test_variants_from_a_yaml_list(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Export:\n  variants: [int8, fp32]\n", encoding="utf-8")
    assert load_config(path).Export.variants == ["fp32", "int8"]  # in build order
    path.write_text("Export:\n  variants:\n    - fp32\n    - fp16\n", encoding="utf-8")
    assert load_config(path).Export.variants == ["fp32", "fp16"]


def test_variants_from_a_comma_string_in_a_file(tmp_path):
    """The form every config.yaml written before variants became a list holds."""
    path = tmp_path / "c.yaml"
    path.write_text("Export:\n  variants: fp32,fp16,int8\n", encoding="utf-8")
    assert load_config(path).Export.variants == ["fp32", "fp16", "int8"]


@pytest.mark.parametrize("text, expected", [
    ("fp32,int8", ["fp32", "int8"]), ("int8, fp32,fp16", ["fp32", "fp16", "int8"]), ("fp32", ["fp32"]),
    ("[fp32,int8]", ["fp32", "int8"]), ("[fp16, fp32]", ["fp32", "fp16"]), ("fp32,fp32", ["fp32"]),
])
def test_variants_from_an_override(text, expected):
    assert load_config(None, [f"Export.variants={text}"]).Export.variants == expected


@pytest.mark.parametrize("text, message", [
    ("int8", r"Export\.variants must include fp32 \(the reference model\)"),
    ("[fp16, int8]", r"Export\.variants must include fp32"),
    ("fp32,bf16", r"Export\.variants: unknown variant\(s\) \['bf16'\]; choose from fp32, fp16, int8"),
    ("3", r"Export\.variants: expected list of str, got 3 \(int\)"),
    ("[fp32, 16]", r"Export\.variants: unknown variant\(s\) \['16'\]"),
    ("null", r"Export\.variants: expected list of str, got None"),
    ("[fp32", r"Export\.variants: '\[fp32' is not a valid YAML list"),
])
def test_bad_variants_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"Export.variants={text}"])


def test_variants_direct_construction_and_round_trip(tmp_path):
    assert ExportConfig(variants="int8,fp32").variants == ["fp32", "int8"]
    cfg = load_config(None, ["Export.variants=fp32,fp16"])
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
    assert Config().Export.variants is not Config().Export.variants  # no default list shared between configs


# ---------------------------------------------------------------- names defined once


def test_literals_are_built_from_the_name_tuples():
    hints = typing.get_type_hints(ModelConfig)
    assert typing.get_args(hints["name"]) == TEXT_ENCODERS + IMAGE_BACKBONES + SEQUENCE_MODELS + TWO_TOWER_MODELS
    method = typing.get_type_hints(PretrainConfig)["method"]
    literal = next(a for a in typing.get_args(method) if a is not type(None))
    assert typing.get_args(literal) == TEXT_METHODS + IMAGE_METHODS
    assert load_config(None, ["Model.name=pplcnet_x0_25", "Data.modality=image"]).Model.name == "pplcnet_x0_25"
    with pytest.raises(ConfigError, match=r"Model\.name: 'resnet50' is not allowed.*did you mean resnet18\?"):
        load_config(None, ["Model.name=resnet50"])


def test_backbone_table_is_built_from_image_backbones():
    from paddle_tag.models.backbones import BACKBONES  # imports PaddleClas (a few seconds)

    assert tuple(BACKBONES) == IMAGE_BACKBONES


def test_image_size_minimum_is_shared_with_the_image_reader():
    from paddle_tag.data import images

    assert images.MIN_IMAGE_SIZE is MIN_IMAGE_SIZE
