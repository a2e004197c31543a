"""The one fit loop of every task: seeded, resumable after a kill, data-parallel ready, with progress bars.

Reproducibility: the batch order of an epoch is drawn from ``seed + epoch`` and the dropout RNG is re-seeded from
``(seed, step)`` before every step, so the step counter *is* the RNG state (:mod:`.state`) and a run resumed from
``last/`` ends with the same weights and metrics as an uninterrupted one.

Evaluation runs every ``Global.eval_every`` steps, at the end of every epoch and at the last step (with
``Global.eval_every: -1`` only at the last step); each writes ``last/`` (with optimizer and loop state) and, when
the task's ``best_metric`` improved, ``best/``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import paddle
from tqdm.auto import tqdm

from paddle_tag.config import Config, save_config
from paddle_tag.data.dataset import epoch_order
from paddle_tag.engine.checkpoint import Training, restore_training, resume_checkpoint, save_checkpoint
from paddle_tag.engine.optim import JointOptimizer, build_optimizer
from paddle_tag.engine.plots import plot_curves
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.state import TrainState, scaler_state
from paddle_tag.engine.tasks.base import Task
from paddle_tag.errors import ConfigError
from paddle_tag.utils.io import atomic_write_json


class Trainer:
    """Fits ``task.model`` to ``Global.epochs`` (or ``Global.max_steps``), keeping ``best/`` and ``last/``."""

    def __init__(self, config: Config, runtime: Runtime, task: Task) -> None:
        self.config, self.runtime, self.task = config, runtime, task
        self.out = Path(config.Global.output_dir)
        self.steps_per_epoch = len(self._epoch_batches(0))
        if self.steps_per_epoch == 0:
            full = "full " if task.drop_last else ""
            raise ConfigError(f"no {full}training batch: {task.num_examples()} examples, Data.batch_size="
                              f"{config.Data.batch_size}, {runtime.world_size} worker(s)")
        total = config.Global.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.Global.max_steps) if config.Global.max_steps > 0 else total
        self.optimizer, self.scheduler = build_optimizer(config.Optimizer, task.model, self.total_steps,
                                                         task.loss_cells())
        if runtime.amp_level == "O2":  # low-precision parameters, fp32 master weights in the optimizer(s)
            parts = list(getattr(self.optimizer, "parts", [self.optimizer]))
            task.model, parts = paddle.amp.decorate(models=task.model, optimizers=parts, level="O2",
                                                    dtype=runtime.amp_dtype, master_weight=True)
            self.optimizer = JointOptimizer(*parts) if len(parts) > 1 else parts[0]
        self.scaler = runtime.grad_scaler()
        self.forward = paddle.DataParallel(task.model) if runtime.world_size > 1 else task.model
        self.state = TrainState()

    @property
    def model(self) -> paddle.nn.Layer:
        return self.task.model

    # -- public -------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train; return the contents of the run's ``metrics.json``."""
        if self.runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / "config.yaml")
        self._maybe_resume()
        self.task.on_fit_start(self.out)
        # a fresh name scope: the optimizer names its accumulators when the first step creates them, and the state
        # a resume loads is keyed by a fresh process's names (without it, resuming in a process that already
        # trained, a notebook or a test, fails in optimizer.step)
        with paddle.utils.unique_name.guard():
            self._run_epochs()
        return self._finish()

    # -- the loop -----------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        return epoch_order(self.task.num_examples(), self.config.Data.batch_size, self.config.Global.seed, epoch,
                           shuffle=True, rank=self.runtime.rank, world_size=self.runtime.world_size,
                           drop_last=self.task.drop_last)

    def _run_epochs(self) -> None:
        cfg, state = self.config.Global, self.state
        bar = tqdm(total=self.total_steps, initial=state.global_step, desc="train", dynamic_ncols=True,
                   disable=not (cfg.progress and self.runtime.is_main))
        started, running = time.time(), []
        while state.global_step < self.total_steps and state.epoch < cfg.epochs:
            batches = self._epoch_batches(state.epoch)
            for indices in batches[state.batch_in_epoch:]:
                running.append(self._train_step(indices, state.global_step))
                state.global_step += 1
                state.batch_in_epoch += 1
                step = state.global_step
                bar.update(1)
                if step % cfg.log_every == 0 or step == self.total_steps:
                    record = {"step": step, "loss": float(np.mean(running)), "lr": float(self.scheduler.get_lr())}
                    state.history["train"].append(record)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", epoch=state.epoch + 1)
                    running = []
                if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or step == self.total_steps:
                    started = self._timed_evaluate(started)
                if step >= self.total_steps:
                    break
            if state.batch_in_epoch >= len(batches):
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                evals = state.history["eval"]
                if cfg.eval_every >= 0 and (evals[-1]["step"] if evals else -1) != state.global_step:
                    started = self._timed_evaluate(started)
        bar.close()

    def _train_step(self, indices: np.ndarray, step: int) -> float:
        """Seed, forward, backward, (loss-scaled) step, advance the schedule; a non-finite loss stops the run
        before it can poison the weights or a checkpoint."""
        paddle.seed(self.config.Global.seed * 1_000_003 + step)  # the step is the RNG state
        loss = self.task.batch_loss(self.forward, indices, step)
        value = float(loss.item())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {step}; lower Optimizer.lr or check the data")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            for part in getattr(self.optimizer, "parts", [self.optimizer]):  # a JointOptimizer steps each part
                self.scaler.step(part)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        self.scheduler.step()
        return value

    def _timed_evaluate(self, started: float) -> float:
        self.state.train_time_s += time.time() - started  # evaluation is not training time
        self._evaluate_and_save(self.state.global_step)
        return time.time()

    # -- evaluation and checkpoints -----------------------------------------------------------------------
    def _evaluate_and_save(self, step: int) -> None:
        state, task = self.state, self.task
        metrics = task.evaluate(step)
        train = state.history["train"]
        record = {"step": step, "epoch": round(step / self.steps_per_epoch, 2),
                  "train_loss": train[-1]["loss"] if train else None,
                  **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
        state.history["eval"].append(record)
        key = task.best_metric or "step"
        improved = state.best is None or record[key] > state.best[key]
        if improved:
            state.best, state.best_step = record, step
        shown = " ".join(f"{k}={record[k]:.4f}" for k in task.shown_metrics if k in record) or "no monitor"
        tqdm.write(f"[eval] step {step}/{self.total_steps} epoch {record['epoch']:g}: {shown}"
                   f"{'  (best)' if improved and task.best_metric else ''}")
        if not self.runtime.is_main:
            return
        state.scaler = scaler_state(self.scaler)
        common = dict(kind=task.kind, config=self.config, metrics={**metrics, **record}, step=step)
        if improved:
            save_checkpoint(self.out / "best", write_payload=lambda d: task.write_weights(d, training=False), **common)
        save_checkpoint(self.out / "last", write_payload=lambda d: task.write_weights(d, training=True),
                        training=Training(task.model, self.optimizer, state), **common)
        plot_curves(state.history, self.out / "curves.png", metric_keys=task.shown_metrics)

    def _maybe_resume(self) -> None:
        path = resume_checkpoint(self.config.Global.resume, self.out)
        if path is None:
            return
        state = restore_training(path, self.task.kind, self.task.model, self.optimizer, self.task.restore_weights)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.state = state
        tqdm.write(f"[resume] from {path} at step {state.global_step} (epoch {state.epoch + 1})")

    def _finish(self) -> dict:
        state = self.state
        seconds = state.train_time_s
        done = state.global_step * self.config.Data.batch_size * self.runtime.world_size
        result = {"kind": self.task.kind, "best_metric": self.task.best_metric, "steps": state.global_step,
                  "epochs_done": state.epoch, "train_time_s": round(seconds, 2),
                  "samples_per_s": round(done / seconds, 2) if seconds else None,
                  "best_step": state.best_step, "best": state.best,
                  "final": state.history["eval"][-1] if state.history["eval"] else None}
        if self.runtime.is_main:
            result.update(self.task.summary(self.out, state.best_step))
            atomic_write_json(self.out / "metrics.json", result)
        return result
