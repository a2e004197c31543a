"""Tests for paddle_tag.metrics.knn: the weighted kNN monitor of contrastive pretraining."""

import warnings

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from paddle_tag.metrics import knn_accuracy, knn_predict

SQRT3_2 = np.sqrt(3.0) / 2.0


def reference_predict(train, labels, query, num_classes, k, temperature):
    """Slow, obvious version: per query, stable sort of cosine similarities, weighted vote."""
    train = np.asarray(train, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    preds = []
    for q in query:
        sims = train @ (q / np.linalg.norm(q))
        nearest = np.argsort(-sims, kind="stable")[: min(k, len(train))]  # ties: lower index first
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[labels[j]] += np.exp(sims[j] / temperature)
        preds.append(int(np.argmax(votes)))  # ties: lower class id
    return np.array(preds)


def two_clusters(rng, n_per_class, dim=16, spread=1.0):
    """Two Gaussian clusters around orthogonal centres of norm 10 (angularly well separated)."""
    centres = np.zeros((2, dim))
    centres[0, 0] = centres[1, 1] = 10.0
    labels = np.repeat([0, 1], n_per_class)
    feats = centres[labels] + spread * rng.standard_normal((2 * n_per_class, dim))
    return feats, labels


# ---------------------------------------------------------------- known answers


def test_well_separated_clusters_are_classified_perfectly():
    rng = np.random.default_rng(0)
    train, y_train = two_clusters(rng, 100)
    query, y_query = two_clusters(rng, 50)
    assert knn_accuracy(train, y_train, query, y_query, num_classes=2) == 1.0
    # float32 features (what a paddle model gives) and swapped class ids give the same answer
    assert knn_accuracy(train.astype("float32"), y_train, query.astype("float32"), y_query, 2) == 1.0
    assert knn_accuracy(train, 1 - y_train, query, 1 - y_query, num_classes=2) == 1.0


def hand_case():
    # Query along +x. Neighbours: one class-0 sample at 0 degrees (cos = 1), two class-1 samples at
    # +-60 degrees (cos = 1/2), and a class-0 sample at 180 degrees (cos = -1). Norms differ on
    # purpose: features are normalised inside.
    train = np.array([[5.0, 0.0], [0.5, SQRT3_2], [1.5, -3 * SQRT3_2], [-2.0, 0.0]])
    labels = np.array([0, 1, 1, 0])
    query = np.array([[3.0, 0.0]])
    return train, labels, query


@pytest.mark.parametrize(
    "temperature, expected",
    [
        # k = 3: class 0 scores e^(1/T), class 1 scores 2 e^(1/(2T)); class 0 wins iff e^(1/(2T)) > 2,
        # i.e. iff T < 1 / (2 ln 2) = 0.7213.
        (0.07, 0),  # SimCLR/MoCo default: e^14.3 vs 2 e^7.1
        (0.1, 0),  # e^10 = 22026 vs 2 e^5 = 297
        (0.7, 0),  # e^1.4286 = 4.17 vs 2 e^0.7143 = 4.09
        (0.75, 1),  # e^1.3333 = 3.79 vs 2 e^0.6667 = 3.90
        (1.0, 1),  # e = 2.72 vs 2 e^0.5 = 3.30
    ],
)
def test_weighted_vote_differs_from_majority_vote(temperature, expected):
    train, labels, query = hand_case()
    assert knn_predict(train, labels, query, num_classes=2, k=3, temperature=temperature).tolist() == [
        expected
    ]
    # the plain majority vote of the same 3 neighbours is class 1 (two votes against one)
    sk = KNeighborsClassifier(n_neighbors=3, metric="cosine", algorithm="brute").fit(train, labels)
    assert sk.predict(query).tolist() == [1]


def test_far_neighbour_only_counts_when_inside_k():
    train, labels, query = hand_case()
    # T = 0.75, k = 4: the class-0 sample at 180 degrees adds e^(-1/T) = 0.26 to class 0's 3.79,
    # which now beats class 1's 3.90 (4.06 > 3.90). With k = 3 it is not a neighbour: class 1.
    assert knn_predict(train, labels, query, 2, k=3, temperature=0.75).tolist() == [1]
    assert knn_predict(train, labels, query, 2, k=4, temperature=0.75).tolist() == [0]


def test_exact_ties_go_to_lower_train_index_then_lower_class():
    # Query along +y: samples 1, 2, 3 are identical (cos = 1), sample 0 is orthogonal (cos = 0).
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 1.0]])
    labels = np.array([1, 2, 0, 2])
    query = np.array([[0.0, 1.0]])
    # k = 1: of the three equally similar samples the lowest index (1, class 2) is the neighbour
    assert knn_predict(train, labels, query, 3, k=1).tolist() == [2]
    # k = 2: samples 1 and 2 (not 3), classes 2 and 0 tie on equal weights: the lower id, 0, wins
    assert knn_predict(train, labels, query, 3, k=2).tolist() == [0]
    # k = 3: samples 1, 2, 3 -> class 2 has two votes
    assert knn_predict(train, labels, query, 3, k=3).tolist() == [2]


def test_matches_reference_with_many_exact_ties():
    # Features drawn from a pool of 6 vectors: many exactly equal similarities at the k-th place.
    rng = np.random.default_rng(1)
    pool = rng.standard_normal((6, 5))
    train = pool[rng.integers(0, 6, size=80)]
    labels = rng.integers(0, 4, size=80)
    query = np.concatenate([pool, rng.standard_normal((30, 5))])
    for k in (1, 3, 7, 20):
        expected = reference_predict(train, labels, query, 4, k, temperature=0.5)
        for batch_size in (1, 4, 1024):
            got = knn_predict(train, labels, query, 4, k=k, temperature=0.5, batch_size=batch_size)
            np.testing.assert_array_equal(got, expected, err_msg=f"k={k} batch_size={batch_size}")


def test_small_temperature_does_not_overflow():
    # exp(sim / T) would overflow float64 for T = 1e-3 (e^1000); weights are taken relative to the
    # nearest neighbour, so the vote stays exact: the nearest sample's class dominates.
    train, labels, query = hand_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert knn_predict(train, labels, query, 2, k=4, temperature=1e-3).tolist() == [0]
        far = np.array([[-1.0, 0.1]])  # nearest: sample 3 (class 0, cos ~ 0.995), others cos < 0
        assert knn_predict(train, labels, far, 2, k=4, temperature=1e-3).tolist() == [0]


# ---------------------------------------------------------------- batching, k clipping, dtypes


def test_batching_gives_identical_results():
    rng = np.random.default_rng(2)
    train = rng.standard_normal((500, 12))
    labels = rng.integers(0, 5, size=500)
    query = rng.standard_normal((203, 12))
    full = knn_predict(train, labels, query, 5, k=15, batch_size=1024)
    for batch_size in (1, 7, 64, 202, 203):
        np.testing.assert_array_equal(
            knn_predict(train, labels, query, 5, k=15, batch_size=batch_size), full
        )
    assert full.shape == (203,) and full.dtype == np.int64


def test_k_larger_than_train_set_is_clipped():
    train, labels, query = hand_case()
    for temperature in (0.1, 0.75):
        clipped = knn_predict(train, labels, query, 2, k=1000, temperature=temperature)
        exact = knn_predict(train, labels, query, 2, k=4, temperature=temperature)
        np.testing.assert_array_equal(clipped, exact)
    assert knn_accuracy(train, labels, query, np.array([0]), 2, k=1000, temperature=0.75) == 1.0


def test_accuracy_is_a_python_float_of_the_right_value():
    train, labels, query = hand_case()
    queries = np.concatenate([query, query, -query])  # predictions at T = 1: 1, 1, 0 (nearest: sample 3)
    acc = knn_accuracy(train, labels, queries, np.array([1, 0, 0]), 2, k=3, temperature=1.0)
    assert type(acc) is float and acc == pytest.approx(2 / 3)


def test_integer_features_and_unused_classes():
    train = np.array([[1, 0], [0, 1], [0, 3]])
    labels = np.array([4, 2, 2])
    preds = knn_predict(train, labels, np.array([[2, 0], [0, 5]]), num_classes=6, k=1)
    assert preds.tolist() == [4, 2]


# ---------------------------------------------------------------- scikit-learn, uniform weights


@pytest.mark.parametrize("k", [1, 5, 9])
def test_matches_sklearn_majority_vote_at_very_large_temperature(k):
    # T = 1e9: weights are 1 - O(1e-9), so with two classes and odd k (no count ties) the weighted
    # vote is exactly the majority vote.
    rng = np.random.default_rng(k)
    train = rng.standard_normal((300, 8))
    labels = rng.integers(0, 2, size=300)
    query = rng.standard_normal((200, 8))
    sk = KNeighborsClassifier(n_neighbors=k, weights="uniform", metric="cosine", algorithm="brute")
    expected = sk.fit(train, labels).predict(query)
    got = knn_predict(train, labels, query, 2, k=k, temperature=1e9, batch_size=64)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("k", [1, 4, 10, 25])
def test_matches_sklearn_majority_vote_at_infinite_temperature(k):
    # T = inf: weights exactly 1, so even count ties are resolved the same way (lower class id).
    rng = np.random.default_rng(100 + k)
    train = rng.standard_normal((400, 6))
    labels = rng.integers(0, 4, size=400)
    query = rng.standard_normal((150, 6))
    sk = KNeighborsClassifier(n_neighbors=k, weights="uniform", metric="cosine", algorithm="brute")
    expected = sk.fit(train, labels).predict(query)
    got = knn_predict(train, labels, query, 4, k=k, temperature=np.inf, batch_size=64)
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- validation


def good_args():
    train, labels, query = hand_case()
    return dict(train_features=train, train_labels=labels, query_features=query,
                query_labels=np.array([0]), num_classes=2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(train_features=np.zeros((0, 2)), train_labels=np.zeros(0, int)), "train_features is empty"),
        (dict(query_features=np.zeros((0, 2)), query_labels=np.zeros(0, int)), "query_features is empty"),
        (dict(train_features=np.zeros((4, 0)), query_features=np.zeros((1, 0))), "is empty"),
        (dict(train_features=np.ones(4)), r"train_features must have shape \(N, D\)"),
        (dict(query_features=np.ones((1, 3))), "dimension 2, query_features 3"),
        (dict(train_labels=np.array([0, 1, 1])), "3 train_labels for 4 train_features"),
        (dict(query_labels=np.array([0, 1])), "2 query_labels for 1 query_features"),
        (dict(train_labels=np.array([0, 1, 2, 0])), r"train_labels holds ids outside \[0, 2\)"),
        (dict(train_labels=np.array([0, -1, 1, 0])), r"train_labels holds ids outside \[0, 2\)"),
        (dict(query_labels=np.array([2])), r"query_labels holds ids outside \[0, 2\)"),
        (dict(train_labels=np.array([0, 1.5, 1, 0])), "integer class ids"),
        (dict(train_labels=np.zeros((4, 1), dtype=int)), r"train_labels must have shape \(N,\)"),
        (dict(query_features=np.array([[np.nan, 1.0]])), "NaN or infinite"),
        (dict(train_features=np.full((4, 2), np.inf)), "NaN or infinite"),
        (dict(num_classes=0), "num_classes must be an int >= 1"),
        (dict(k=0), "k must be an int >= 1"),
        (dict(k=2.5), "k must be an int >= 1"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(temperature=-0.07), "temperature must be > 0"),
        (dict(temperature=float("nan")), "temperature must be > 0"),
        (dict(batch_size=0), "batch_size must be an int >= 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    args = {**good_args(), **change}
    with pytest.raises(ValueError, match=message):
        knn_accuracy(**args)
    if "query_labels" not in change:  # knn_predict validates everything but the query labels
        del args["query_labels"]
        with pytest.raises(ValueError, match=message):
            knn_predict(**args)
