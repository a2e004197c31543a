"""Tests of paddle_tag.config.suggest: "did you mean" for other tools' key names as well as for typos."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paddle_tag.config.loader import all_keys, load_config
from paddle_tag.config.suggest import ALIASES, alias_for, suggest
from paddle_tag.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def error_of(override: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    return str(info.value)


@pytest.mark.parametrize("override, meant", [
    ("Optimizer.learning_rate=1e-3", "Optimizer.lr"),  # the first-run report: it used to answer warmup_ratio
    ("Optimizer.learningRate=1e-3", "Optimizer.lr"),
    ("Global.learning_rate=1e-3", "Optimizer.lr"),  # the right key in another section
    ("Global.num_train_epochs=2", "Global.epochs"),
    ("Global.max_epochs=2", "Global.epochs"),
    ("Optimizer.epochs=2", "Global.epochs"),  # our own name, in the wrong section
    ("Global.batch_size=8", "Data.batch_size"),
    ("Data.per_device_train_batch_size=8", "Data.batch_size"),
    ("Data.max_length=64", "Data.max_seq_len"),
    ("Model.model_name_or_path=x", "Model.pretrained"),
    ("Global.fp16=true", "Global.amp"),
    ("Data.validation_file=x", "Data.eval_path"),
    ("Optimizer.warmup_steps=100", "Optimizer.warmup_ratio"),
])
def test_names_from_other_tools_get_our_key(override, meant):
    key = override.split("=")[0]
    assert error_of(override) == f"unknown key {key} (did you mean {meant}?)"


@pytest.mark.parametrize("override, meant", [
    ("Optimizer.lrr=1", "Optimizer.lr"), ("Global.epoch=3", "Global.epochs"),
    ("Model.hidden_sise=3", "Model.hidden_size"), ("Pretrain.temprature=0.1", "Pretrain.temperature"),
])
def test_typos_still_get_the_closest_spelling(override, meant):
    assert f"did you mean {meant}?" in error_of(override)


def test_override_without_section_names_the_key():
    assert error_of("learning_rate=1e-3") == "override key 'learning_rate' must be Section.key (did you mean Optimizer.lr?)"
    assert error_of("zzz=1").endswith("must be Section.key, e.g. Optimizer.lr")


def test_every_alias_names_a_real_key_and_no_key_of_ours():
    keys = set(all_keys())
    assert not {target for target in ALIASES.values()} - keys
    own_names = {k.split(".")[1] for k in keys}
    # a name we use ourselves resolves to our key, never through the table (except across sections on purpose)
    shadowing = {name for name in ALIASES if name in own_names}
    assert shadowing <= {"dim", "prefix", "model"}, shadowing
    for name in shadowing:  # in the section that owns it the key exists, so only other sections see the alias
        assert alias_for(f"Model.{name}", list(keys)) in keys


def test_unrelated_name_gets_no_suggestion():
    assert suggest("Qqqq.zzzzzz", all_keys()) == ""
    assert suggest("nonsense", ["a.b"]) == ""


def test_cli_prints_the_alias_suggestion():
    proc = subprocess.run([sys.executable, str(REPO / "tools/train.py"), "-c", "configs/text/thucnews_e5_small_pruned.yaml",
                           "-o", "Optimizer.learning_rate=1e-3"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2
    assert "unknown key Optimizer.learning_rate (did you mean Optimizer.lr?)" in proc.stderr
    assert "Traceback" not in proc.stderr
