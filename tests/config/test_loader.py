"""Tests of paddle_tag.config.loader: validation messages, -o parsing, _base_ includes, round trips, CLI exit."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from paddle_tag.config.loader import (
    all_keys,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)
from paddle_tag.config.schema import Config
from paddle_tag.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "_base_" not in p.relative_to(REPO / "configs").parts)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- unknown keys and sections


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown key Optimizer\.lrr.*did you mean Optimizer\.lr\?"):
        load_config(None, ["Optimizer.lrr=1"])


def test_unknown_key_in_file_suggests_closest(tmp_path):
    cfg = write(tmp_path / "c.yaml", "Global:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"Global\.epoch.*did you mean Global\.epochs\?"):
        load_config(cfg)


def test_unknown_section_suggests_closest():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["Optimiser.lr=1e-3"])
    msg = str(info.value)
    assert "unknown section 'Optimiser'" in msg
    assert "did you mean Optimizer?" in msg
    assert "valid sections:" in msg and "Global" in msg


def test_section_case_slip_is_suggested():
    with pytest.raises(ConfigError, match=r"did you mean Global\?"):
        load_config(None, ["global.seed=1"])


# ---------------------------------------------------------------- type errors


def test_int_given_word_names_key_type_value():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["Global.epochs=abc"])
    msg = str(info.value)
    assert "Global.epochs" in msg and "expected int" in msg and "'abc'" in msg


def test_int_given_float_is_refused():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["Data.max_seq_len=1.5"])
    msg = str(info.value)
    assert "Data.max_seq_len" in msg and "expected int" in msg and "1.5" in msg and "float" in msg


def test_bool_given_string_is_refused():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["Global.progress=maybe"])
    msg = str(info.value)
    assert "Global.progress" in msg and "expected bool" in msg and "'maybe'" in msg


def test_int_given_bool_is_refused():
    with pytest.raises(ConfigError, match=r"Global\.epochs.*expected int.*True"):
        load_config(None, ["Global.epochs=true"])


def test_literal_choice_error_lists_choices_and_suggests():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["Data.task=multi_lable"])
    msg = str(info.value)
    assert "Data.task" in msg and "'multi_class'" in msg and "'multi_label'" in msg
    assert "did you mean multi_label?" in msg


def test_literal_device_rejects_unknown():
    with pytest.raises(ConfigError, match=r"Global\.device.*'tpu'.*'cpu', 'gpu'"):
        load_config(None, ["Global.device=tpu"])


def test_optional_literal_accepts_null_and_choice_but_not_other():
    assert load_config(None, ["Global.amp=null"]).Global.amp is None
    assert load_config(None, ["Global.amp=O2"]).Global.amp == "O2"
    with pytest.raises(ConfigError, match=r"Global\.amp.*'O1', 'O2' or null"):
        load_config(None, ["Global.amp=O3"])


def test_section_must_be_mapping(tmp_path):
    cfg = write(tmp_path / "c.yaml", "Global: 3\n")
    with pytest.raises(ConfigError, match="section Global must be a mapping"):
        load_config(cfg)


def test_top_level_must_be_mapping(tmp_path):
    cfg = write(tmp_path / "c.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(cfg)


# ---------------------------------------------------------------- -o values as YAML scalars


@pytest.mark.parametrize("text, expected", [
    ("3", 3), ("-1", -1), ("0.5", 0.5), ("true", True), ("false", False), ("null", None), ("~", None),
    ("", None), ("cpu", "cpu"), ("a=b", "a=b"), ("3e-5", "3e-5"),
    ("query: ", "query: "), ("[a, b]", "[a, b]"),  # every key is a scalar: YAML mappings / lists stay text
])
def test_parse_override_yaml_scalars(text, expected):
    key, value = parse_override(f"Sec.key={text}")
    assert key == "Sec.key"
    assert value == expected and type(value) is type(expected)


def test_override_values_are_typed():
    cfg = load_config(None, ["Global.epochs=7", "Optimizer.lr=3e-5", "Optimizer.weight_decay=0",
                             "Global.progress=false", "Global.checkpoint=null", "Global.output_dir=out/x",
                             "Metric.default_threshold=0.25", "Optimizer.epsilon=1.0e-6"])
    assert cfg.Global.epochs == 7 and type(cfg.Global.epochs) is int
    # PyYAML (YAML 1.1) reads 3e-5 as a string; the float field still gets a float.
    assert cfg.Optimizer.lr == pytest.approx(3e-5) and type(cfg.Optimizer.lr) is float
    assert cfg.Optimizer.weight_decay == 0.0 and type(cfg.Optimizer.weight_decay) is float
    assert cfg.Global.progress is False
    assert cfg.Global.checkpoint is None
    assert cfg.Global.output_dir == "out/x"
    assert cfg.Metric.default_threshold == 0.25
    assert cfg.Optimizer.epsilon == pytest.approx(1e-6)


def test_float_field_rejects_non_numeric_string():
    with pytest.raises(ConfigError, match=r"Optimizer\.lr.*expected float.*'fast'"):
        load_config(None, ["Optimizer.lr=fast"])


def test_str_field_accepts_number():
    assert load_config(None, ["Global.output_dir=123"]).Global.output_dir == "123"


def test_later_override_wins():
    assert load_config(None, ["Global.seed=1", "Global.seed=2"]).Global.seed == 2


def test_override_without_equals():
    with pytest.raises(ConfigError, match=r"'Global\.epochs' must look like Section\.key=value"):
        load_config(None, ["Global.epochs"])


@pytest.mark.parametrize("item", ["epochs=3", "Global.epochs.x=3", ".epochs=3", "Global.=3", "=3"])
def test_override_bad_key_shape(item):
    with pytest.raises(ConfigError, match=r"must be Section\.key"):
        load_config(None, [item])


# ---------------------------------------------------------------- files and _base_


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found:.*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    cfg = write(tmp_path / "bad.yaml", "Global:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(cfg)


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path / "empty.yaml", "")) == Config()


def test_base_single_relative_and_child_overrides(tmp_path):
    write(tmp_path / "bases" / "base.yaml",
          "Global:\n  epochs: 9\n  seed: 5\nOptimizer:\n  lr: 1.0e-3\n  weight_decay: 0.2\n")
    child = write(tmp_path / "exp" / "child.yaml",
                  "_base_: ../bases/base.yaml\nGlobal:\n  epochs: 2\nOptimizer:\n  lr: 2.0e-4\n")
    cfg = load_config(child)
    assert cfg.Global.epochs == 2  # child overrides base
    assert cfg.Global.seed == 5  # nested merge keeps the base's other keys
    assert cfg.Optimizer.lr == pytest.approx(2e-4)
    assert cfg.Optimizer.weight_decay == pytest.approx(0.2)


def test_base_list_later_base_wins_and_child_wins(tmp_path):
    write(tmp_path / "a.yaml", "Global:\n  seed: 1\n  epochs: 11\nData:\n  batch_size: 8\n")
    write(tmp_path / "b.yaml", "Global:\n  seed: 2\nModel:\n  pooling: mean\n")
    child = write(tmp_path / "c.yaml", "_base_: [a.yaml, b.yaml]\nData:\n  max_seq_len: 64\n")
    cfg = load_config(child)
    assert cfg.Global.seed == 2
    assert cfg.Global.epochs == 11
    assert cfg.Data.batch_size == 8 and cfg.Data.max_seq_len == 64
    assert cfg.Model.pooling == "mean"


def test_base_nested_chain_and_overrides_on_top(tmp_path):
    write(tmp_path / "root.yaml", "Global:\n  seed: 3\n  epochs: 4\n")
    write(tmp_path / "mid" / "mid.yaml", "_base_: ../root.yaml\nGlobal:\n  epochs: 5\n")
    leaf = write(tmp_path / "leaf.yaml", "_base_: mid/mid.yaml\nData:\n  batch_size: 4\n")
    cfg = load_config(leaf, ["Global.seed=99"])
    assert (cfg.Global.seed, cfg.Global.epochs, cfg.Data.batch_size) == (99, 5, 4)


def test_base_unknown_key_is_still_checked(tmp_path):
    write(tmp_path / "base.yaml", "Model:\n  hiden_size: 64\n")
    child = write(tmp_path / "child.yaml", "_base_: base.yaml\n")
    with pytest.raises(ConfigError, match=r"did you mean Model\.hidden_size\?"):
        load_config(child)


def test_base_cycle(tmp_path):
    write(tmp_path / "a.yaml", "_base_: b.yaml\nGlobal:\n  seed: 1\n")
    write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"includes itself through _base_:.*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(tmp_path / "a.yaml")


def test_base_self_include(tmp_path):
    write(tmp_path / "a.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(tmp_path / "a.yaml")


def test_base_missing(tmp_path):
    child = write(tmp_path / "c.yaml", "_base_: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"config file not found:.*gone\.yaml"):
        load_config(child)


# ---------------------------------------------------------------- Global.resume


@pytest.mark.parametrize("text, expected", [("true", True), ("false", False), ("output/run/last", "output/run/last")])
def test_resume_accepts_bool_or_path(text, expected):
    value = load_config(None, [f"Global.resume={text}"]).Global.resume
    assert value == expected and type(value) is type(expected)


def test_resume_default_false():
    assert load_config().Global.resume is False


# ---------------------------------------------------------------- schema coverage and round trip


REQUIRED_KEYS = ["Global.output_dir", "Global.epochs", "Global.max_steps", "Global.seed", "Global.device",
                 "Global.checkpoint", "Global.resume", "Data.train_path", "Data.eval_path", "Data.max_seq_len",
                 "Data.task", "Model.pretrained", "Optimizer.lr"]


def test_required_keys_exist_with_defaults():
    keys = all_keys()
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    assert not missing
    assert len(keys) == len(set(keys))
    defaults = config_to_dict(Config())
    for key in keys:  # every key has a default, so an empty config is valid
        section, name = key.split(".")
        assert name in defaults[section]
    assert load_config() == Config()


def test_every_key_can_be_overridden_with_its_default():
    defaults = config_to_dict(Config())
    items = []
    for key in all_keys():
        section, name = key.split(".")
        value = defaults[section][name]
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value) or "''"
        items.append(f"{key}={text}")
    assert load_config(None, items) == Config()


def test_save_load_round_trip(tmp_path):
    cfg = load_config(None, ["Global.epochs=7", "Optimizer.lr=3e-5", "Optimizer.epsilon=1e-8",
                             "Global.resume=some/dir", "Global.amp=O1", "Data.task=multi_label",
                             "Model.pretrained=中文模型", "Model.pooling=mean", "Global.progress=false"])
    path = tmp_path / "sub" / "resolved.yaml"
    path.parent.mkdir()
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)
    assert "中文模型" in path.read_text(encoding="utf-8")  # allow_unicode keeps it readable


def test_save_load_round_trip_defaults(tmp_path):
    save_config(Config(), tmp_path / "d.yaml")
    assert load_config(tmp_path / "d.yaml") == Config()


# ---------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.Data.train_path and cfg.Global.output_dir


def test_shipped_configs_found():
    assert len(CONFIGS) >= 3


def test_shipped_config_inherits_base():
    cfg = load_config(REPO / "configs/text/thucnews_ernie_small.yaml")
    assert cfg.Model.hidden_size == 256 and cfg.Model.vocab_file == "data/vocab/chinese_bert/vocab.txt"
    assert cfg.Optimizer.lr == pytest.approx(5e-4)
    medium = load_config(REPO / "configs/text/thucnews_ernie3_medium.yaml")
    assert medium.Model.pretrained == "ernie-3.0-medium-zh" and medium.Optimizer.lr == pytest.approx(5e-5)
    assert medium.Data.max_seq_len == 48  # from thucnews_ernie_small.yaml two levels up


# ---------------------------------------------------------------- the CLI


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/train.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_cli_unknown_key_exits_2_without_traceback():
    proc = run_train("-c", "configs/text/thucnews_ernie_small.yaml", "-o", "Optimizer.lrr=1")
    assert proc.returncode == 2, proc.stderr
    assert "did you mean Optimizer.lr" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_missing_config_exits_2_without_traceback(tmp_path):
    proc = run_train("-c", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2, proc.stderr
    assert "config file not found" in proc.stderr and "missing.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr
