"""Nearest-item search by inner product with faiss: exact for small catalogues, approximate above.

``ItemIndex(vectors)`` holds item vectors (row ``i`` = item ``i``); ``search(queries, k, exclude)`` returns,
per query, the ``k`` rows with the highest inner product, highest first, never returning a row given in
``skip_rows`` (e.g. the padding row 0) nor one of that query's ``exclude`` rows (items the user has seen).

Up to ``approximate_above`` searchable items the index is exact (``IndexFlatIP``); above it, an
approximate index on inner product: ``"ivf"`` (``IndexIVFFlat``, the default) or ``"hnsw"``
(``IndexHNSWFlat``). ``benchmarks/item_search_1m.py`` chose IVF and its defaults: on 1M clustered,
L2-normalised 64-d vectors, nlist 4 sqrt(N) and nprobe 128 gave recall@50 0.985-0.987 against exact at
0.6-0.8 ms a query (exact: 11-13 ms) and built in 34-36 s (HNSW M=32: 149-492 s, less recall at equal
latency). Vectors of
unequal norms (raw inner-product tables) were not measured: check recall on them before relying on these.

Example::

    index = ItemIndex(item_vectors, skip_rows=[0], threads=2)
    rows, scores = index.search(user_vectors, k=10, exclude=[seen_a, seen_b])
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np

from deploy import DeployError

__all__ = ["APPROXIMATE_KINDS", "ItemIndex", "ItemIndexError"]


class ItemIndexError(DeployError, ValueError):
    """Bad vectors, queries, ``k`` or exclusions (HTTP 400 when it comes from a request)."""


def _as_float32_matrix(array: object, what: str) -> np.ndarray:
    """A C-contiguous float32 (rows, dim) copy or view; other float dtypes are converted silently."""
    matrix = np.asarray(array)
    if matrix.ndim != 2:
        raise ItemIndexError(f"{what} must be a 2-D array (rows, dim), got shape {matrix.shape}")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise ItemIndexError(f"{what} must hold floats (float32 preferred), got dtype {matrix.dtype}")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ItemIndexError(f"{what} has non-finite values (NaN/inf) in {len(bad)} row(s), "
                             f"first row {int(bad[0])}")
    return matrix


def _is_positive_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _build_flat(vectors: np.ndarray, **_: int) -> faiss.Index:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def _build_hnsw(vectors: np.ndarray, *, hnsw_m: int, ef_construction: int, ef_search: int,
                **_: int) -> faiss.Index:
    index = faiss.IndexHNSWFlat(vectors.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.hnsw.efSearch = ef_search
    index.add(vectors)
    return index


def _build_ivf(vectors: np.ndarray, *, nlist: int | None, nprobe: int, **_: int) -> faiss.Index:
    count, dim = vectors.shape
    nlist = nlist if nlist is not None else round(4 * count ** 0.5)  # the usual rule: cells of ~sqrt(N) / 4 items
    nlist = max(1, min(nlist, count // 39))  # faiss wants >= 39 training points per centroid
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # 64 points per centroid train k-means as well as all of them, in a fraction of the time
    sample = np.random.default_rng(0).permutation(count)[: 64 * nlist]
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    index.nprobe = min(nprobe, nlist)
    return index


APPROXIMATE_KINDS = {"hnsw": _build_hnsw, "ivf": _build_ivf}
# past this many candidates per query, brute force beats deepening an approximate search
_MAX_APPROXIMATE_DEPTH = 1 << 14


class ItemIndex:
    """Top-k inner-product search over item vectors (see the module docstring).

    Args:
        vectors: (N, H) item vectors; float32, other float dtypes are converted to float32 silently.
        approximate_above: catalogues with more searchable items than this get an approximate index.
        approximate: ``"ivf"`` (default: at 1M items it built 4x faster than HNSW and beat it on recall at
            equal latency) or ``"hnsw"``, the approximate index kind.
        skip_rows: rows never returned (padding row, retired items); they are left out of the index.
        threads: faiss OpenMP threads for building and for batches of queries; None = the constructing
            thread's faiss count (``faiss.omp_get_max_threads()``, all cores unless OMP_NUM_THREADS). OpenMP
            counts are per calling thread, so every search sets its caller's (``faiss.omp_set_num_threads``):
            a server's worker threads get this count too. A single query runs on 1 thread: faiss's HNSW
            starts a thread team even for one query, and on a busy 2-core box waiting for the idle member
            cost up to ~20 ms per query (p90, 50k items) against under 1 ms on 1 thread.
        hnsw_m, ef_construction, ef_search: HNSW graph degree, build and search beam widths.
        nlist, nprobe: IVF cell count (None: 4 sqrt(N); capped at N / 39) and cells visited per query.
    """

    def __init__(self, vectors: np.ndarray, approximate_above: int = 100_000, *, approximate: str = "ivf",
                 skip_rows: Iterable[int] = (), threads: int | None = None, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128, nlist: int | None = None,
                 nprobe: int = 128) -> None:
        if approximate not in APPROXIMATE_KINDS:
            raise ItemIndexError(f"approximate must be one of {sorted(APPROXIMATE_KINDS)}, got {approximate!r}")
        for name, value in (("approximate_above", approximate_above), ("hnsw_m", hnsw_m),
                            ("ef_construction", ef_construction), ("ef_search", ef_search),
                            ("nlist", 1 if nlist is None else nlist), ("nprobe", nprobe)):
            if not _is_positive_int(value):
                raise ItemIndexError(f"{name} must be a positive integer, got {value!r}")
        if threads is not None and not _is_positive_int(threads):
            raise ItemIndexError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = int(threads) if threads is not None else faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.threads)
        matrix = _as_float32_matrix(vectors, "item vectors")
        self.num_items, self.dim = matrix.shape
        keep = np.ones(self.num_items, dtype=bool)
        keep[self._check_rows(skip_rows, "skip_rows")] = False
        # index position -> item row; positions are what faiss returns
        self._rows = np.flatnonzero(keep).astype(np.int64)
        self._searchable = keep
        self.num_searchable = len(self._rows)
        if self.num_searchable == 0:
            raise ItemIndexError(f"no searchable items: all {self.num_items} rows are in skip_rows")
        searchable = matrix if self.num_searchable == self.num_items else matrix[self._rows]
        self.kind = approximate if self.num_searchable > approximate_above else "exact"
        build = _build_flat if self.kind == "exact" else APPROXIMATE_KINDS[self.kind]
        self._hnsw_m = hnsw_m
        self._index = build(searchable, hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search,
                            nlist=nlist, nprobe=nprobe)
        # for the rare query whose exclusions outgrow an approximate search (a view of the caller's float32
        # array, not a copy, when it was one)
        self._vectors = matrix

    def __repr__(self) -> str:
        return (f"ItemIndex(kind={self.kind!r}, items={self.num_items}, searchable={self.num_searchable}, "
                f"dim={self.dim})")

    @property
    def settings(self) -> dict[str, int | str]:
        """The index kind and its parameters as built and tuned (for logs and benchmark tables)."""
        if self.kind == "hnsw":
            return {"kind": "hnsw", "hnsw_m": self._hnsw_m, "ef_construction": self._index.hnsw.efConstruction,
                    "ef_search": self._index.hnsw.efSearch}
        if self.kind == "ivf":
            return {"kind": "ivf", "nlist": self._index.nlist, "nprobe": self._index.nprobe}
        return {"kind": "exact"}

    def tune(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change the search effort of a built approximate index (recall against latency), no rebuild."""
        for name, value, kind in (("ef_search", ef_search, "hnsw"), ("nprobe", nprobe, "ivf")):
            if value is None:
                continue
            if self.kind != kind:
                raise ItemIndexError(f"{name} tunes an {kind!r} index, this one is {self.kind!r}")
            if not _is_positive_int(value):
                raise ItemIndexError(f"{name} must be a positive integer, got {value!r}")
            if kind == "hnsw":
                self._index.hnsw.efSearch = int(value)
            else:
                self._index.nprobe = min(int(value), self._index.nlist)

    def search(self, queries: np.ndarray, k: int,
               exclude: Sequence[np.ndarray | Sequence[int] | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows per query: ``(indices (B, k) int64, scores (B, k) float32)``, scores descending.

        ``exclude[b]`` lists rows never returned for query ``b`` (out-of-range rows are an error). When
        skip rows and exclusions leave fewer than ``k`` items, the missing places hold index -1 and
        score -inf.
        """
        queries = _as_float32_matrix(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ItemIndexError(f"queries have dim {queries.shape[1]}, the item vectors {self.dim}")
        if not _is_positive_int(k) or k > self.num_searchable:
            raise ItemIndexError(f"k must be an integer in [1, {self.num_searchable}] (searchable items), got {k!r}")
        k = int(k)
        if exclude is not None and len(exclude) != len(queries):
            raise ItemIndexError(f"exclude has {len(exclude)} entries for {len(queries)} queries")
        excluded = [self._check_rows(rows, f"exclude[{b}]") if rows is not None else np.empty(0, np.int64)
                    for b, rows in enumerate(exclude if exclude is not None else [None] * len(queries))]
        faiss.omp_set_num_threads(1 if len(queries) == 1 else self.threads)
        if not any(len(rows) for rows in excluded):  # the common case, without the per-query filtering
            found_scores, positions = self._index.search(queries, k)
            if (positions >= 0).all():
                return self._rows[positions], found_scores
        indices = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        # how many places each query can fill at all, once its searchable exclusions are gone
        wanted = [min(k, self.num_searchable - int(self._searchable[np.unique(rows)].sum())) for rows in excluded]
        pending = np.arange(len(queries))
        # exact: k + |exclude| candidates always hold k allowed rows, so one pass; approximate: deepen if short
        depth = k + max((len(rows) for rows in excluded), default=0)
        while len(pending):
            depth = min(depth, self.num_searchable)
            found_scores, positions = self._index.search(queries[pending], depth)
            deepen, brute_force = [], []
            for slot, b in enumerate(pending):
                found = positions[slot] >= 0
                rows = np.where(found, self._rows[positions[slot]], -1)
                taken = np.flatnonzero(found & ~np.isin(rows, excluded[b]))[:k]
                indices[b, :len(taken)] = rows[taken]
                scores[b, :len(taken)] = found_scores[slot, taken]
                if len(taken) < wanted[b]:
                    # an approximate index that returned fewer than `depth` rows has no more to give
                    exhausted = not found.all() or depth >= min(self.num_searchable, _MAX_APPROXIMATE_DEPTH)
                    (brute_force if exhausted else deepen).append(b)
            if brute_force:
                self._exact_fallback(queries, k, excluded, brute_force, indices, scores)
            pending = np.asarray(deepen, dtype=np.int64)
            depth *= 2
        return indices, scores

    def _exact_fallback(self, queries: np.ndarray, k: int, excluded: list[np.ndarray], pending: list[int],
                        indices: np.ndarray, scores: np.ndarray) -> None:
        """Brute force for queries an approximate index could not fill (huge exclusion lists)."""
        for b in pending:
            all_scores = self._vectors @ queries[b]
            allowed = self._searchable.copy()
            allowed[excluded[b]] = False
            candidates = np.flatnonzero(allowed)
            count = min(k, len(candidates))
            top = candidates[np.argpartition(-all_scores[candidates], count - 1)[:count]] if count else candidates
            top = top[np.argsort(-all_scores[top], kind="stable")]
            indices[b] = -1
            scores[b] = -np.inf
            indices[b, :count] = top
            scores[b, :count] = all_scores[top]

    def _check_rows(self, rows: Iterable[int] | np.ndarray, what: str) -> np.ndarray:
        """Row ids as an int64 array, each in [0, num_items)."""
        array = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows)
        if array.size == 0:
            return np.empty(0, dtype=np.int64)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ItemIndexError(f"{what} must be a 1-D list of integer row ids, got {array.dtype} {array.shape}")
        out_of_range = (array < 0) | (array >= self.num_items)
        if out_of_range.any():
            raise ItemIndexError(f"{what} has row {int(array[out_of_range][0])} outside [0, {self.num_items})")
        return array.astype(np.int64, copy=False)
