"""Tests for paddle_tag.metrics.multilabel and compute_metrics(task="multi_label")."""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
)

from paddle_tag.metrics import (
    DEFAULT_GRID,
    average_precision,
    compute_metrics,
    mean_average_precision,
    multilabel_metrics,
    tune_thresholds,
)

# N=4 samples, C=3 classes
Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
S = np.array([[0.9, 0.2, 0.4], [0.6, 0.7, 0.1], [0.3, 0.8, 0.2], [0.1, 0.4, 0.6]])


def approx(frac: Fraction):
    return pytest.approx(float(frac), abs=1e-12)


def test_hand_computed_case():
    # predictions at 0.5: [1,0,0] [1,1,0] [0,1,0] [0,0,1]
    # class 0: true {0,2} pred {0,1} tp1 fp1 fn1 -> F1 1/2
    # class 1: true {1,2} pred {1,2} tp2 fp0 fn0 -> F1 1
    # class 2: true {0}   pred {3}   tp0 fp1 fn1 -> F1 0
    # micro: tp3 fp2 fn2 -> P = R = F1 = 3/5 ; macro F1 = (1/2 + 1 + 0)/3 = 1/2
    # samples: s0 2*1/(2+1)=2/3, s1 2/(1+2)=2/3, s2 2/(2+1)=2/3, s3 0/(0+1)=0 -> 2/4 = 1/2
    # AP class 0: sorted 0.9(+) 0.6(-) 0.3(+) 0.1(-): 1/2*1 + 1/2*2/3 = 5/6
    # AP class 1: sorted 0.8(+) 0.7(+) ...: 1
    # AP class 2: sorted 0.6(-) 0.4(+): 1 * 1/2 = 1/2
    # mAP = (5/6 + 1 + 1/2)/3 = 7/9
    m = multilabel_metrics(Y, S, 0.5)
    assert m["micro_f1"] == approx(Fraction(3, 5))
    assert m["micro_precision"] == approx(Fraction(3, 5))
    assert m["micro_recall"] == approx(Fraction(3, 5))
    assert m["macro_f1"] == approx(Fraction(1, 2))
    assert m["samples_f1"] == approx(Fraction(1, 2))
    assert m["mAP"] == approx(Fraction(7, 9))
    assert average_precision(Y[:, 0], S[:, 0]) == approx(Fraction(5, 6))


def test_per_class_thresholds():
    # thresholds (0.5, 0.5, 0.35): class 2 now predicted for s0 (0.4) and s3 (0.6)
    # class 2: tp1 fp1 fn0 -> F1 2/3 ; macro F1 = (1/2 + 1 + 2/3)/3 = 13/18
    m = multilabel_metrics(Y, S, np.array([0.5, 0.5, 0.35]))
    assert m["macro_f1"] == approx(Fraction(13, 18))
    with pytest.raises(ValueError):
        multilabel_metrics(Y, S, np.array([0.5, 0.5]))


def test_ties_in_scores_ap():
    # y = + + -, scores 0.9 0.5 0.5: the tied pair forms one threshold
    # thr 0.9: P=1 R=1/2 ; thr 0.5: P=2/3 R=1 -> AP = 1/2*1 + 1/2*2/3 = 5/6 (in either order)
    for y, s in [([1, 1, 0], [0.9, 0.5, 0.5]), ([1, 0, 1], [0.9, 0.5, 0.5])]:
        assert average_precision(np.array(y), np.array(s)) == approx(Fraction(5, 6))
        assert average_precision(np.array(y), np.array(s)) == pytest.approx(average_precision_score(y, s))
    # all scores tied: AP = prevalence = 2/4
    assert average_precision(np.array([1, 0, 1, 0]), np.full(4, 0.3)) == 0.5


def test_map_skips_class_without_positives():
    y = Y.copy()
    y[:, 2] = 0  # class 2 now has no positive -> excluded; mAP = (5/6 + 1)/2 = 11/12
    assert mean_average_precision(y, S) == approx(Fraction(11, 12))
    assert average_precision(y[:, 2], S[:, 2]) == 0.0
    assert mean_average_precision(np.zeros((3, 2)), np.ones((3, 2))) == 0.0


def test_all_correct():
    m = multilabel_metrics(Y[:3], Y[:3].astype(float), 0.5)
    assert m["micro_f1"] == m["macro_f1"] == m["samples_f1"] == m["mAP"] == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(10, 120)), 6
    y = (rng.random((n, c)) < rng.uniform(0.1, 0.5, size=c)).astype(int)
    y[:, 0] = 0  # a class with no positives
    y[: n // 10] = 0  # some samples with no labels
    scores = np.clip(0.35 * y + rng.random((n, c)) * 0.7, 0, 1)
    if seed % 2:
        scores = np.round(scores, 1)  # many ties
    thr = rng.uniform(0.3, 0.7, size=c) if seed % 3 == 0 else 0.5
    pred = (scores >= thr).astype(int)
    m = multilabel_metrics(y, scores, thr)
    for avg in ("micro", "macro", "samples"):
        assert m[f"{avg}_f1"] == pytest.approx(f1_score(y, pred, average=avg, zero_division=0))
    assert m["micro_precision"] == pytest.approx(precision_score(y, pred, average="micro", zero_division=0))
    assert m["micro_recall"] == pytest.approx(recall_score(y, pred, average="micro", zero_division=0))
    cols = y.any(axis=0)
    ref_map = average_precision_score(y[:, cols], scores[:, cols], average="macro")
    assert m["mAP"] == pytest.approx(ref_map)
    for j in np.flatnonzero(cols):
        ref = average_precision_score(y[:, j], scores[:, j])
        assert average_precision(y[:, j], scores[:, j]) == pytest.approx(ref)


def test_default_grid_contains_exact_half():
    assert 0.5 in DEFAULT_GRID.tolist() and len(DEFAULT_GRID) == 19
    assert DEFAULT_GRID[0] == 0.05 and DEFAULT_GRID[-1] == 0.95


def test_tune_thresholds_known_best():
    # class 0: F1 = 1 only for t in (0.22, 0.27] -> grid has exactly 0.25
    # class 1: F1 = 1 for t in (0.10, 0.42] -> ties 0.15..0.40, closest to 0.5 is 0.40
    # class 2: no positives -> 0.5
    # class 3: its only positive scores 0.01 < every grid value: F1 = 0 everywhere -> tie -> 0.5
    y = np.array([[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    s = np.array(
        [
            [0.10, 0.10, 0.9, 0.70],
            [0.22, 0.42, 0.8, 0.01],
            [0.27, 0.58, 0.1, 0.60],
            [0.60, 0.90, 0.3, 0.20],
            [0.90, 0.95, 0.2, 0.30],
        ]
    )
    np.testing.assert_allclose(tune_thresholds(y, s), [0.25, 0.40, 0.5, 0.5])


def test_tune_thresholds_equal_distance_tie_goes_lower():
    # grid 0.4 / 0.6 both give F1 = 1 and are equally far from 0.5 -> the smaller one
    t = tune_thresholds(np.array([[1], [0]]), np.array([[0.7], [0.3]]), grid=np.array([0.6, 0.4]))
    assert t.tolist() == [0.4]


@pytest.mark.parametrize("seed", range(5))
def test_tuned_thresholds_not_worse_than_half(seed):
    rng = np.random.default_rng(seed)
    n, c = 80, 5
    y = (rng.random((n, c)) < 0.3).astype(int)
    scores = np.clip(0.3 * y + rng.random((n, c)) * 0.6, 0, 1)
    t = tune_thresholds(y, scores)
    assert t.shape == (c,)
    tuned = f1_score(y, (scores >= t).astype(int), average=None, zero_division=0)
    base = f1_score(y, (scores >= 0.5).astype(int), average=None, zero_division=0)
    assert np.all(tuned >= base - 1e-12)
    # the brute-force maximum over the grid, class by class
    for j in range(c):
        best = max(f1_score(y[:, j], (scores[:, j] >= g).astype(int), zero_division=0) for g in DEFAULT_GRID)
        assert tuned[j] == pytest.approx(best)


def test_compute_metrics_multi_label_json():
    names = ["财经", "体育", "科技"]
    out = compute_metrics("multi_label", Y, S, thresholds=[0.5, 0.5, 0.35], label_names=names)
    assert out["macro_f1"] == approx(Fraction(13, 18))
    rows = out["per_class"]
    assert [r["name"] for r in rows] == names
    assert [r["support"] for r in rows] == [2, 2, 1]
    assert rows[2]["f1"] == approx(Fraction(2, 3))
    json.dumps(out, allow_nan=False)
    assert all(type(v) is float for k, v in out.items() if k != "per_class")
    default = compute_metrics("multi_label", Y, S)
    assert default["micro_f1"] == approx(Fraction(3, 5))


def test_invalid_multilabel_inputs():
    with pytest.raises(ValueError):
        multilabel_metrics(np.array([[2, 0]]), np.array([[0.1, 0.2]]))
    with pytest.raises(ValueError):
        multilabel_metrics(Y, S[:, :2])


def test_no_sklearn_in_package():
    import paddle_tag.metrics.multiclass as mc
    import paddle_tag.metrics.multilabel as ml

    for mod in (mc, ml):
        source = Path(mod.__file__).read_text(encoding="utf-8")
        assert "import sklearn" not in source and "from sklearn" not in source
