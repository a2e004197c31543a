"""The reduce step: PCA, the null step, UMAP, and UMAP's clear error when umap-learn is missing."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from helpers import read_jsonl

from paddle_tag.config import load_config
from paddle_tag.discover.embed import TfidfEmbedder
from paddle_tag.discover.reduce import REDUCERS, NoReduce, PCAReducer, UMAPReducer, build_reducer
from paddle_tag.errors import ConfigError


@pytest.fixture(scope="module")
def vectors(real_data) -> np.ndarray:
    texts = [r["text"] for r in read_jsonl(real_data["thucnews"] / "train.jsonl")[:200]]
    return TfidfEmbedder(dim=64, seed=0).fit_transform(texts)


def assert_reduced_well(make, vectors: np.ndarray, dim: int, min_neighbours_kept: float) -> None:
    """``make()`` builds a reducer: unit float32 rows of ``dim``, the same twice, and neighbourhoods kept — an item's
    nearest neighbour after reduction is among its 10 nearest before for at least ``min_neighbours_kept`` of the
    items (a random map scores ~0.03)."""
    reduced = make().fit_transform(vectors)
    assert reduced.shape == (len(vectors), dim) and reduced.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(reduced, make().fit_transform(vectors))
    full, small = vectors @ vectors.T, reduced @ reduced.T
    np.fill_diagonal(full, -2)
    np.fill_diagonal(small, -2)
    top10 = np.argsort(-full, axis=1)[:, :10]
    assert np.mean([small[i].argmax() in top10[i] for i in range(len(vectors))]) > min_neighbours_kept


def test_pca_gives_unit_rows_repeatably_and_keeps_neighbours(vectors):
    assert_reduced_well(lambda: PCAReducer(dim=16, seed=3), vectors, 16, 0.6)  # 0.77 measured


def test_pca_equals_sklearns_full_svd(vectors):
    from sklearn.decomposition import PCA

    expected = PCA(n_components=12, svd_solver="full").fit_transform(vectors.astype(np.float64))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(PCAReducer(dim=12).fit_transform(vectors), expected, atol=1e-5)


def test_pca_works_in_chunks(vectors, monkeypatch):
    import paddle_tag.discover.reduce as reduce

    whole = PCAReducer(dim=8).fit_transform(vectors)
    monkeypatch.setattr(reduce, "CHUNK_ROWS", 37)  # 200 rows: five full chunks and a partial one
    np.testing.assert_allclose(PCAReducer(dim=8).fit_transform(vectors), whole, atol=1e-5)  # float32 sums


def test_pca_of_very_wide_vectors_uses_a_seeded_randomised_svd(vectors, monkeypatch):
    import paddle_tag.discover.reduce as reduce

    monkeypatch.setattr(reduce, "COVARIANCE_MAX_DIM", 32)  # the 64-d vectors now count as too wide
    assert_reduced_well(lambda: PCAReducer(dim=16, seed=3), vectors, 16, 0.6)


def test_pca_with_dim_above_the_data_keeps_the_embeddings(vectors):
    np.testing.assert_allclose(PCAReducer(dim=500).fit_transform(vectors), vectors, atol=1e-6)
    np.testing.assert_allclose(NoReduce().fit_transform(vectors * 3.0), vectors, atol=1e-6)


def test_steps_are_chosen_from_the_config():
    assert set(REDUCERS) == {"pca", "umap", "none"}
    assert isinstance(build_reducer(load_config(None, ["Discover.reduce=none"])), NoReduce)
    pca = build_reducer(load_config(None, ["Discover.dim=8", "Global.seed=5"]))
    assert isinstance(pca, PCAReducer) and (pca.dim, pca.seed) == (8, 5)
    with pytest.raises(ConfigError, match="did you mean umap"):
        load_config(None, ["Discover.reduce=uma"])


def test_umap_without_the_package_says_how_to_install_it(vectors, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail as if it were not installed
    with pytest.raises(ConfigError, match="pip install umap-learn"):
        UMAPReducer(dim=8).fit_transform(vectors)


@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn is missing (the test extra has it)")
def test_umap_gives_unit_rows_repeatably_and_keeps_neighbours(vectors):
    # numba compiles UMAP on first use (15-40 s); it keeps neighbourhoods better than PCA (0.96 measured)
    assert_reduced_well(lambda: UMAPReducer(dim=8, seed=3), vectors, 8, 0.8)
    # centred: UMAP's raw layout sits off the origin (mean cosine between items 0.995 here), which would make
    # every cluster look like every other to the merge step
    reduced = UMAPReducer(dim=8, seed=3).fit_transform(vectors)
    assert abs(float((reduced @ reduced.T).mean())) < 0.1
    with pytest.raises(ConfigError, match="too few"):
        UMAPReducer(dim=8).fit_transform(vectors[:9])
