"""The one fit loop, driven by a tiny real task: when it evaluates, that a resumed run trains exactly the batches
an uninterrupted one would, what it logs, what selects best/, and that a non-finite loss stops it untouched."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import paddle
import pytest
from safetensors.numpy import save_file

from paddle_tag.config import load_config
from paddle_tag.engine.checkpoint import checkpoint_kind
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.base import Task
from paddle_tag.engine.trainer import Trainer
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.serialization import load_weights, state_to_numpy

EXAMPLES, BATCH = 16, 4  # four batches an epoch


class Regression(Task):
    """Fits ``y = x·w`` with a linear layer; records the batches it trains on; evaluation scores ``-step`` (or a
    fixed sequence) so the test knows which one is best."""

    kind = "text_tagging"  # any kind: the trainer does not look inside the payload
    best_metric = "score"
    shown_metrics = ("score",)

    def __init__(self, config, scores: Optional[list[float]] = None, poison_at: int = -1, crash_at: int = -1) -> None:
        paddle.seed(0)
        super().__init__(config, Runtime("cpu"), paddle.nn.Linear(3, 1))
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(EXAMPLES, 3)).astype("float32")
        self.y = self.x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")
        self.trained: list[tuple[int, ...]] = []
        self.scores, self.poison_at, self.crash_at = scores, poison_at, crash_at

    def num_examples(self) -> int:
        return EXAMPLES

    def batch_loss(self, forward, indices, step):
        if step == self.crash_at:
            raise KeyboardInterrupt  # a kill: nothing after the last evaluation is saved
        self.trained.append(tuple(int(i) for i in indices))
        loss = ((forward(paddle.to_tensor(self.x[indices])) - paddle.to_tensor(self.y[indices])) ** 2).mean()
        return loss * float("nan") if step == self.poison_at else loss

    def evaluate(self, step: int) -> dict:
        evals = len(self.trainer_evals) if hasattr(self, "trainer_evals") else 0
        self.trainer_evals = [*getattr(self, "trainer_evals", []), step]
        return {"score": self.scores[evals] if self.scores else float(-step)}

    def write_weights(self, directory: Path, training: bool) -> None:
        save_file(state_to_numpy(self.model), str(directory / "model.safetensors"))

    def restore_weights(self, directory: Path) -> None:
        load_weights(self.model, directory / "model.safetensors")


def make(tmp_path: Path, *overrides: str, **task_args) -> Trainer:
    config = load_config(None, [f"Global.output_dir={tmp_path / 'run'}", f"Data.batch_size={BATCH}",
                                "Global.progress=false", "Global.log_every=2", "Optimizer.lr=0.1",
                                "Optimizer.warmup_ratio=0", *overrides])
    return Trainer(config, Runtime("cpu"), Regression(config, **task_args))


@pytest.mark.parametrize("eval_every, expected", [(0, [4, 8, 10]), (3, [3, 4, 6, 8, 9, 10]), (-1, [10])])
def test_evaluation_points(tmp_path, eval_every, expected):
    trainer = make(tmp_path, "Global.epochs=3", "Global.max_steps=10", f"Global.eval_every={eval_every}")
    trainer.fit()
    assert trainer.task.trainer_evals == expected
    assert [r["step"] for r in trainer.state.history["eval"]] == expected


def test_resume_mid_epoch_trains_exactly_the_remaining_batches_and_ends_with_the_same_weights(tmp_path):
    full = make(tmp_path / "full", "Global.epochs=2", "Global.eval_every=3")
    full.fit()
    first = make(tmp_path / "cut", "Global.epochs=2", "Global.eval_every=3", crash_at=5)
    with pytest.raises(KeyboardInterrupt):
        first.fit()  # killed at step 5: last/ holds step 4, the end of epoch 1
    rest = make(tmp_path / "cut", "Global.epochs=2", "Global.eval_every=3", "Global.resume=true")
    rest.fit()
    assert len(first.task.trained) == 5 and rest.state.history["train"][0]["step"] == 2
    assert first.task.trained[:4] + rest.task.trained == full.task.trained
    assert rest.state.global_step == 8 and rest.state.epoch == 2
    np.testing.assert_array_equal(rest.model.weight.numpy(), full.model.weight.numpy())
    cut, whole = (json.loads((d / "run/metrics.json").read_text()) for d in (tmp_path / "cut", tmp_path / "full"))
    assert cut["best"] == whole["best"] and cut["final"] == pytest.approx(whole["final"])


def test_train_history_logs_mean_loss_and_lr_and_the_loss_falls(tmp_path):
    trainer = make(tmp_path, "Global.epochs=3", "Global.max_steps=9")
    trainer.fit()
    train = trainer.state.history["train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 9]
    assert train[-1]["loss"] < train[0]["loss"]
    assert train[0]["lr"] == pytest.approx(0.1 * (1 - 2 / 9))  # linear decay, no warmup


def test_best_follows_the_task_metric_and_checkpoints_say_their_kind(tmp_path):
    trainer = make(tmp_path, "Global.epochs=2", "Global.eval_every=2", scores=[0.1, 0.7, 0.3, 0.5])
    result = trainer.fit()
    assert result["best_step"] == 4 and result["best"]["score"] == 0.7 and result["kind"] == "text_tagging"
    out = tmp_path / "run"
    assert json.loads((out / "best/metrics.json").read_text())["step"] == 4
    assert json.loads((out / "last/metrics.json").read_text())["step"] == 8
    assert checkpoint_kind(out / "best") == checkpoint_kind(out / "last") == "text_tagging"
    assert (out / "curves.png").stat().st_size > 0


def test_resume_from_another_kind_is_refused(tmp_path):
    make(tmp_path, "Global.epochs=1").fit()
    other = make(tmp_path, "Global.epochs=2", "Global.resume=true")
    other.task.kind = "simcse"
    with pytest.raises(ModelLoadError, match="cannot resume a simcse run from .*: it is a text_tagging checkpoint"):
        other.fit()


def test_a_non_finite_loss_stops_the_run_before_touching_weights(tmp_path):
    trainer = make(tmp_path, "Global.epochs=1", poison_at=2)
    with pytest.raises(FloatingPointError, match="loss is nan at step 2"):
        trainer.fit()
    after_two = make(tmp_path / "ref", "Global.epochs=1", crash_at=2)  # the same schedule, stopped before step 2
    with pytest.raises(KeyboardInterrupt):
        after_two.fit()
    np.testing.assert_array_equal(trainer.model.weight.numpy(), after_two.model.weight.numpy())
