"""The epoch/step loop shared by the tagger :class:`~paddle_tag.engine.trainer.Trainer` and the
contrastive :class:`~paddle_tag.engine.pretrainer.Pretrainer`.

The loop owns only the bookkeeping that makes a run resumable and visible: the position
(``global_step``, ``epoch``, ``batch_in_epoch``) in a ``state`` dict that checkpoints save, the
progress bar, the running train loss and learning rate (``history["train"]``), and when to evaluate
(every ``Global.eval_every`` steps, at the end of every epoch, and at the last step; with
``Global.eval_every: -1`` only at the last step). What a step does
and what an evaluation saves are the caller's functions.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence

import numpy as np
import paddle
from tqdm.auto import tqdm

from paddle_tag.config.schema import GlobalConfig


def new_state() -> dict:
    """The loop state a fresh run starts from (checkpoints store and restore this dict)."""
    return {"global_step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "best_step": None,
            "history": {"train": [], "eval": []}, "train_time_s": 0.0}


def run_epochs(state: dict, cfg: GlobalConfig, total_steps: int, *,
               batches_for_epoch: Callable[[int], Sequence[np.ndarray]],
               train_step: Callable[[np.ndarray, int], float],
               evaluate: Callable[[int], None],
               current_lr: Callable[[], float],
               show_progress: bool = True) -> None:
    """Train from ``state``'s position to ``total_steps`` / ``cfg.epochs``, updating ``state`` in place.

    ``train_step(indices, step)`` trains on one batch (dataset indices) and returns its loss;
    ``evaluate(step)`` evaluates and writes checkpoints. Time spent in ``evaluate`` is not counted in
    ``state["train_time_s"]``.

    The loop runs under a fresh ``unique_name`` scope: the optimizer names its accumulators when the first
    step creates them (``embedding_0.w_0_moment1_<n>``, ``n`` counting every earlier optimizer of the
    process), and the state a resume loads is keyed by the names of a fresh process (``_0``). Without the
    scope, resuming in a process that already trained (a notebook, a test) fails in ``optimizer.step``.
    """
    with paddle.utils.unique_name.guard():
        _run_epochs(state, cfg, total_steps, batches_for_epoch, train_step, evaluate, current_lr, show_progress)


def _run_epochs(state: dict, cfg: GlobalConfig, total_steps: int, batches_for_epoch, train_step, evaluate,
                current_lr, show_progress: bool) -> None:
    step = state["global_step"]
    bar = tqdm(total=total_steps, initial=step, desc="train", dynamic_ncols=True,
               disable=not (cfg.progress and show_progress))
    started, running = time.time(), []

    def timed_evaluate() -> None:
        nonlocal started
        state["train_time_s"] += time.time() - started
        evaluate(step)
        started = time.time()

    while step < total_steps and state["epoch"] < cfg.epochs:
        batches = batches_for_epoch(state["epoch"])
        for indices in batches[state["batch_in_epoch"]:]:
            loss = train_step(indices, step)
            step += 1
            state.update(global_step=step, batch_in_epoch=state["batch_in_epoch"] + 1)
            running.append(loss)
            bar.update(1)
            if step % cfg.log_every == 0 or step == total_steps:
                record = {"step": step, "loss": float(np.mean(running)), "lr": float(current_lr())}
                state["history"]["train"].append(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", epoch=state["epoch"] + 1)
                running = []
            if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or step == total_steps:
                timed_evaluate()
            if step >= total_steps:
                break
        if state["batch_in_epoch"] >= len(batches):
            state.update(epoch=state["epoch"] + 1, batch_in_epoch=0)
            evals = state["history"]["eval"]
            if cfg.eval_every >= 0 and (evals[-1]["step"] if evals else -1) != step:
                timed_evaluate()
    bar.close()


def optimizer_step(loss: paddle.Tensor, optimizer: paddle.optimizer.Optimizer, scheduler,
                   scaler: Optional[paddle.amp.GradScaler], step: int) -> float:
    """Backward, (loss-scaled) optimizer step, clear gradients, advance the LR schedule; return the loss.

    A non-finite loss stops the run before it can poison the weights or a checkpoint.
    """
    value = float(loss.item())
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {step}; lower Optimizer.lr or check the data")
    if scaler is not None:
        scaler.scale(loss).backward()
        for part in getattr(optimizer, "parts", [optimizer]):  # a JointOptimizer steps each of its optimizers
            scaler.step(part)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.clear_grad()
    scheduler.step()
    return value


def record_monitor_eval(state: dict, step: int, steps_per_epoch: int, total_steps: int,
                        knn_top1: Optional[float]) -> tuple[dict, bool]:
    """Log one pretraining evaluation in ``state``; return its metrics and whether it is the new best
    (by ``knn_top1``; without a kNN monitor the latest evaluation is the best)."""
    train = state["history"]["train"]
    metrics = {"step": step, "epoch": round(step / steps_per_epoch, 2),
               "train_loss": train[-1]["loss"] if train else None}
    if knn_top1 is not None:
        metrics["knn_top1"] = knn_top1
    state["history"]["eval"].append(metrics)
    key = "knn_top1" if knn_top1 is not None else "step"
    improved = state["best"] is None or metrics[key] > state["best"][key]
    if improved:
        state["best"], state["best_step"] = metrics, step
    shown = f"knn_top1={knn_top1:.4f}" if knn_top1 is not None else "no kNN monitor"
    tqdm.write(f"[eval] step {step}/{total_steps} epoch {metrics['epoch']:g}: {shown}"
               f"{'  (best)' if improved and knn_top1 is not None else ''}")
    return metrics, improved
