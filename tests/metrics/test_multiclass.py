"""Tests for paddle_tag.metrics.multiclass and compute_metrics(task="multi_class")."""

import json
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from paddle_tag.metrics import (
    compute_metrics,
    confusion_counts,
    format_report,
    multiclass_metrics,
    per_class_table,
)


def approx(frac: Fraction):
    return pytest.approx(float(frac), abs=1e-12)


def test_hand_computed_three_classes():
    # y_true = 0 0 1 1 2 2, y_pred = 0 1 1 1 0 2
    # class 0: tp=1 (i0) fp=1 (i4) fn=1 (i1) -> P=1/2 R=1/2 F1=2/(2+1+1)=1/2
    # class 1: tp=2 (i2,i3) fp=1 (i1) fn=0  -> P=2/3 R=1   F1=4/(4+1+0)=4/5
    # class 2: tp=1 (i5) fp=0 fn=1 (i4)     -> P=1   R=1/2 F1=2/(2+0+1)=2/3
    # accuracy = 4/6 = 2/3
    # macro F1 = (1/2 + 4/5 + 2/3)/3 = (15+24+20)/90 = 59/90
    # macro P  = (1/2 + 2/3 + 1)/3 = 13/18 ; macro R = (1/2 + 1 + 1/2)/3 = 2/3
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    m = multiclass_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == approx(Fraction(2, 3))
    assert m["macro_f1"] == approx(Fraction(59, 90))
    assert m["macro_precision"] == approx(Fraction(13, 18))
    assert m["macro_recall"] == approx(Fraction(2, 3))
    tp, fp, fn = confusion_counts(y_true, y_pred, 3)
    assert tp.tolist() == [1, 2, 1] and fp.tolist() == [1, 1, 0] and fn.tolist() == [1, 0, 1]
    rows = per_class_table(tp, fp, fn, ["a", "b", "c"])
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert [r["support"] for r in rows] == [2, 2, 2]
    assert rows[1]["f1"] == approx(Fraction(4, 5))
    assert rows[2]["precision"] == 1.0 and rows[2]["recall"] == 0.5


def test_class_never_predicted_and_absent_class():
    # C=4, y_true = 0 1 2 2, y_pred = 0 1 1 1; class 3 never occurs nor is predicted
    # class 0: tp1 fp0 fn0 -> 1, 1, 1
    # class 1: tp1 fp2 fn0 -> P=1/3 R=1 F1=2/(2+2)=1/2
    # class 2: tp0 fp0 fn2 -> never predicted: P=0 (zero_division) R=0 F1=0
    # class 3: absent from y_true and y_pred -> left out of the macro average
    # macro F1 = (1 + 1/2 + 0)/3 = 1/2, macro P = (1 + 1/3 + 0)/3 = 4/9, macro R = 2/3
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1])
    m = multiclass_metrics(y_true, y_pred, 4)
    assert m["accuracy"] == 0.5
    assert m["macro_f1"] == approx(Fraction(1, 2))
    assert m["macro_precision"] == approx(Fraction(4, 9))
    assert m["macro_recall"] == approx(Fraction(2, 3))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_all_correct():
    y = np.array([0, 2, 1, 2, 0])
    m = multiclass_metrics(y, y, 5)
    assert m == {"accuracy": 1.0, "macro_f1": 1.0, "macro_precision": 1.0, "macro_recall": 1.0}


def test_empty_input_is_zero():
    m = multiclass_metrics(np.zeros(0, int), np.zeros(0, int), 3)
    assert all(v == 0.0 for v in m.values())


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    num_classes = 7
    n = int(rng.integers(5, 200))
    y_true = rng.integers(0, 5, size=n)  # classes 5, 6 may only appear in predictions
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, num_classes, size=n))
    m = multiclass_metrics(y_true, y_pred, num_classes)
    kw = dict(average="macro", zero_division=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, **kw))
    assert m["macro_precision"] == pytest.approx(precision_score(y_true, y_pred, **kw))
    assert m["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, **kw))
    tp, fp, fn = confusion_counts(y_true, y_pred, num_classes)
    rows = per_class_table(tp, fp, fn)
    ref = f1_score(y_true, y_pred, labels=list(range(num_classes)), average=None, zero_division=0)
    np.testing.assert_allclose([r["f1"] for r in rows], ref)


def test_invalid_inputs():
    with pytest.raises(ValueError):
        multiclass_metrics(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError):
        multiclass_metrics(np.array([0, 1]), np.array([0, 1, 1]), 3)
    with pytest.raises(ValueError):
        per_class_table(np.array([1, 2]), np.array([0, 0]), np.array([0, 0]), ["only-one"])


def test_format_report_aligned():
    tp, fp, fn = np.array([1, 20]), np.array([0, 3]), np.array([2, 0])
    rows = per_class_table(tp, fp, fn, ["体育", "long_label_name"])
    text = format_report(rows)
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["name", "precision", "recall", "f1", "support"]
    assert len({len(line) for line in lines}) == 1
    assert "long_label_name" in lines[2] and lines[2].endswith("20")


def test_compute_metrics_multi_class():
    # argmax of scores -> 0 1 1 1 0 2, the hand-computed case above
    y_true = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    scores = np.full((6, 3), 0.1)
    scores[np.arange(6), pred] = 0.8
    out = compute_metrics("multi_class", y_true, scores, label_names=["x", "y", "z"])
    assert out["macro_f1"] == approx(Fraction(59, 90))
    assert [r["name"] for r in out["per_class"]] == ["x", "y", "z"]
    json.dumps(out, allow_nan=False)
    assert all(type(v) is float for k, v in out.items() if k != "per_class")
    assert all(type(r["support"]) is int and type(r["f1"]) is float for r in out["per_class"])


def test_compute_metrics_unknown_task():
    with pytest.raises(ValueError, match="multi_class.*multi_label"):
        compute_metrics("regression", np.zeros(2), np.zeros((2, 2)))
