"""Keep a taxonomy current: assign new items to its tags and move the centroids (mini-batch k-means).

Each new item goes to the tag whose centroid is nearest by cosine, if that similarity is at least
``threshold``; otherwise it stays unassigned. Each tag that received ``m`` items with mean embedding ``μ``
moves like a mini-batch k-means centre::

    η = m / (n + m)              # n = items the tag had (its size)
    c ← normalise((1 - η)·c + η·μ),  n ← n + m

The report gives the unassigned share (of this batch and of every item assigned since the discovery run) and
the centroid drift (1 − cosine between a centroid and its previous / originally discovered self);
``rediscovery_due`` is set when the cumulative unassigned share passes ``max_unassigned_share`` or a tag
drifted more than ``max_drift`` from where discovery put it: the taxonomy no longer describes the content.

The math (:func:`nearest_tags`, :func:`minibatch_update`) is pure numpy; :func:`assign_new_items` reads the
current taxonomy from a :class:`~paddle_tag.discover.store.TagStore` and writes the items, their assignments
and the moved centroids back in one transaction.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from paddle_tag.data.readers import check_unicode, item_id, read_json_lines
from paddle_tag.discover.embed import embed_texts
from paddle_tag.discover.pipeline import database_url
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.taxonomy import Assignment, Item
from paddle_tag.errors import ConfigError, DataError, StoreError
from paddle_tag.models.pretrained import resolve_pretrained


@dataclass
class AssignParams:
    """Thresholds of incremental assignment (typed defaults; validated)."""

    threshold: float = 0.3              # minimum cosine to the nearest centroid to be assigned
    max_unassigned_share: float = 0.3   # rediscovery when more of the new items than this stay unassigned
    max_drift: float = 0.05             # ... or when a centroid moved more than this (1 − cosine) since discovery

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if not 0.0 <= self.max_unassigned_share <= 1.0:
            raise ValueError(f"max_unassigned_share must be in [0, 1], got {self.max_unassigned_share}")
        if not 0.0 <= self.max_drift <= 2.0:
            raise ValueError(f"max_drift (1 − cosine) must be in [0, 2], got {self.max_drift}")


@dataclass
class AssignReport:
    """What an assignment batch did, and whether the taxonomy should be discovered again."""

    version_id: int
    items: int                      # items assigned in this batch (new ones, and updated ones with --update)
    skipped: int                    # items this version already assigned with the same text (left alone)
    updated: int                    # items assigned before whose text was replaced (update=True only)
    assigned: int
    unassigned: int
    unassigned_share: float         # of this batch
    cumulative_unassigned_share: float  # of every item assigned since discovery, this batch included
    tags: list[dict]                # tags that received items: key, name, received, size, drift (1 − cos of the
                                    # centroid before and after), drift_since_discovery (vs the discovered one)
    max_drift: float                # the largest drift since discovery over all tags
    rediscovery_due: bool
    reasons: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def nearest_tags(embeddings: np.ndarray, centroids: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's nearest centroid by cosine (-1 below ``threshold``) and that similarity.

    embeddings: (N, D) and centroids: (K, D), both L2-normalised. Returns ``labels`` (N,) int64 and
    ``scores`` (N,) float32 (the best similarity, also for unassigned rows; 0 when K = 0).
    """
    n = embeddings.shape[0]
    if centroids.shape[0] == 0 or n == 0:
        return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float32)
    sims = embeddings.astype(np.float32) @ centroids.astype(np.float32).T
    labels = sims.argmax(axis=1)
    scores = sims[np.arange(n), labels]
    return np.where(scores >= threshold, labels, -1).astype(np.int64), scores.astype(np.float32)


def minibatch_update(centroids: np.ndarray, sizes: np.ndarray, embeddings: np.ndarray,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each centroid towards the mean of its new rows: ``c ← normalise((1-η)c + η·mean)``, ``η = m/(n+m)``.

    centroids: (K, D) unit rows; sizes: (K,) items per tag so far; embeddings: (N, D); labels: (N,) in
    [-1, K) (-1 = unassigned, ignored). Returns new (K, D) float32 centroids and (K,) int64 sizes; tags with
    no new rows keep their centroid exactly.
    """
    new = centroids.astype(np.float32).copy()
    new_sizes = sizes.astype(np.int64).copy()
    for k in np.unique(labels[labels >= 0]):
        rows = embeddings[labels == k].astype(np.float64)
        m = rows.shape[0]
        eta = m / (max(int(sizes[k]), 0) + m)
        moved = (1.0 - eta) * centroids[k].astype(np.float64) + eta * rows.mean(axis=0)
        norm = np.linalg.norm(moved)
        new[k] = (moved / norm if norm > 0 else moved).astype(np.float32)
        new_sizes[k] += m
    return new, new_sizes


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


def read_new_items(path: str | Path) -> list[Item]:
    """Items of a JSONL file: ``{"text": ...}`` with an optional ``"id"`` (a string or an integer); without one,
    the id is ``sha1:<16 hex digits of the text's SHA-1>`` (stable, and distinct from a discovery run's line
    numbers). Every bad line is reported at once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    seen: set[str] = set()

    def parse(obj: dict, where: str, number: int) -> Item:
        if not isinstance(obj.get("text"), str):
            raise DataError(f"{where}: expected a JSON object with a string \"text\"")
        text = check_unicode(obj["text"].strip(), where)
        if not text:
            raise DataError(f"{where}: empty text")
        given = item_id(obj.get("id"), where)
        key = given if given is not None else "sha1:" + hashlib.sha1(text.encode()).hexdigest()[:16]
        if key in seen:
            raise DataError(f"{where}: duplicate id {key!r}")
        seen.add(key)
        return Item(item_id=key, text=text)

    return read_json_lines(path, parse)


@dataclass
class AssignPlan:
    """How a batch of items relates to what the tag database already holds (current version ``version_id``)."""

    fresh: list[int]        # positions of items the current version has not assigned yet
    again: list[int]        # positions of items assigned before whose text changed (assigned again only on update)
    unchanged: list[int]    # positions of items assigned before with the same text (nothing to do)
    previous: dict[str, Optional[int]]  # item id → tag key it had (None: unassigned), for ``again`` items
    conflicts: list[str]    # ids stored with another text (assigned before, or stored by another run)


def plan_assignment(store, version_id: int, items: Sequence[Item]) -> AssignPlan:
    """Sort ``items`` by what the database has of them; see :class:`AssignPlan`."""
    ids = [item.item_id for item in items]
    previous, stored = store.assignment_tags(version_id, ids), store.item_texts(ids)
    conflicts = [item.item_id for item in items if item.item_id in stored and stored[item.item_id] != item.text]
    changed = set(conflicts)
    fresh = [i for i, item in enumerate(items) if item.item_id not in previous]
    again = [i for i, item in enumerate(items) if item.item_id in previous and item.item_id in changed]
    unchanged = [i for i, item in enumerate(items) if item.item_id in previous and item.item_id not in changed]
    return AssignPlan(fresh, again, unchanged, {ids[i]: previous[ids[i]] for i in again}, conflicts)


def refuse_conflicts(plan: AssignPlan, items: Sequence[Item], update: bool) -> None:
    """An id already stored with another text is an error unless the caller asked to ``update`` it."""
    if plan.conflicts and not update:
        shown = ", ".join(repr(i) for i in plan.conflicts[:5]) + (" ..." if len(plan.conflicts) > 5 else "")
        raise DataError(f"{len(plan.conflicts)} of {len(items)} item ids are already in the tag database with "
                        f"another text ({shown}); nothing was written. Give these items new ids, or pass --update "
                        f"to replace their stored text and assign them again")


def assign_new_items(store, items: Sequence[Item], embeddings: np.ndarray,
                     params: Optional[AssignParams] = None, update: bool = False) -> AssignReport:
    """Assign ``items`` (embedded as ``embeddings``, (N, D) L2-normalised, row i = item i) to the store's
    current taxonomy, move its centroids and write everything in one transaction; return the report.

    An item the current version already assigned with the same text is left alone (``skipped``: counting it
    again would pull the centroids twice). An id stored with another text is refused (:class:`DataError`)
    unless ``update``: then its text is replaced and it is assigned again; tag sizes follow its new tag, the
    centroids do not move for it (its earlier embedding moved them once already).
    """
    params = params or AssignParams()
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(items):
        raise DataError(f"expected embeddings of shape ({len(items)}, D), got {embeddings.shape}")
    version = store.current_version()
    if version is None:
        raise StoreError(f"{store.where}: no taxonomy to assign to (run tools/discover.py first)")
    tags = store.list_tags()
    if tags and embeddings.shape[1] != version.dim:
        raise DataError(f"the new items have {embeddings.shape[1]}-d embeddings, the taxonomy {version.dim}-d: "
                        f"embed them as the discovery run did (embedder {version.embedder!r})")
    plan = plan_assignment(store, version.id, items)
    refuse_conflicts(plan, items, update)
    keep = plan.fresh + plan.again
    is_fresh = np.array([i < len(plan.fresh) for i in range(len(keep))], dtype=bool)
    skipped = len(plan.unchanged)
    items, embeddings = [items[i] for i in keep], embeddings[keep]
    dim = embeddings.shape[1]
    centroids = np.stack([tag.centroid for tag in tags]) if tags else np.zeros((0, dim), np.float32)
    initial = np.stack([tag.initial_centroid for tag in tags]) if tags else np.zeros((0, dim), np.float32)
    sizes = np.array([tag.size for tag in tags], dtype=np.int64)
    labels, scores = nearest_tags(embeddings, centroids, params.threshold)
    new_centroids, new_sizes = minibatch_update(centroids, sizes, embeddings[is_fresh], labels[is_fresh])
    index_of = {tag.key: k for k, tag in enumerate(tags)}
    for item, label in zip([x for x, fresh in zip(items, is_fresh) if not fresh], labels[~is_fresh]):
        old = plan.previous[item.item_id]
        if old is not None and old in index_of:
            new_sizes[index_of[old]] -= 1
        if label >= 0:
            new_sizes[label] += 1
    moved = sorted(set(labels[labels >= 0].tolist()))
    touched = sorted(set(moved) | {k for k in range(len(tags)) if new_sizes[k] != sizes[k]})
    store.record_assignments(
        version.id, items,
        [Assignment(item_id=item.item_id, tag_key=tags[k].key if k >= 0 else None, score=float(x))
         for item, k, x in zip(items, labels, scores)],
        centroids={tags[k].key: (new_centroids[k], int(new_sizes[k])) for k in touched},
        replace_texts=update)
    since = [1.0 - cosine(initial[k], new_centroids[k]) for k in range(len(tags))]
    per_tag = [{"key": tags[k].key, "name": tags[k].name, "received": int((labels == k).sum()),
                "size": int(new_sizes[k]), "drift": round(1.0 - cosine(centroids[k], new_centroids[k]), 6),
                "drift_since_discovery": round(since[k], 6)} for k in moved]
    total, unassigned_total = store.assignment_counts(version.id, source="assign")
    n, unassigned = len(items), int((labels < 0).sum())
    worst = int(np.argmax(since)) if tags else -1
    report = AssignReport(
        version_id=version.id, items=n, skipped=skipped, updated=len(plan.again), assigned=n - unassigned,
        unassigned=unassigned, unassigned_share=round(unassigned / n, 4) if n else 0.0,
        cumulative_unassigned_share=round(unassigned_total / total, 4) if total else 0.0,
        tags=per_tag, max_drift=round(since[worst], 6) if tags else 0.0, rediscovery_due=False,
        params=asdict(params))
    if report.cumulative_unassigned_share > params.max_unassigned_share:
        report.reasons.append(f"unassigned share {report.cumulative_unassigned_share:.1%} of the items assigned "
                              f"since discovery > {params.max_unassigned_share:.1%}")
    if report.max_drift > params.max_drift:
        report.reasons.append(f"tag {tags[worst].key} ({tags[worst].name}) drifted {report.max_drift:.4f} > "
                              f"{params.max_drift} (1 − cosine to its discovered centroid)")
    report.rediscovery_due = bool(report.reasons)
    return report


def check_embedder(config, version) -> None:
    """Refuse to embed new items with another embedder than the one the taxonomy was discovered with.

    ``version.embedder`` is what the pipeline recorded (``DiscoveryPipeline.embedder_name``): the resolved model
    directory, or ``tfidf``, whose space is fitted to the discovery run's own texts and cannot take new ones.
    """

    if version.embedder == "tfidf" or config.Discover.embedder == "tfidf":
        raise ConfigError("incremental assignment needs an encoder embedder: a tfidf space is fitted to the "
                          "discovery run's own texts, so new items cannot be embedded into it (discover with "
                          "Discover.embedder=e5 or checkpoint)")

    model = config.Discover.model
    mine = str(Path(resolve_pretrained(model) or model).resolve())
    if mine != version.embedder:
        raise ConfigError(f"taxonomy version {version.id} was discovered with {version.embedder}, but "
                          f"Discover.model={model} is {mine}; assign with the same model "
                          f"(-o Discover.model={version.embedder})")


def assign_file(config, path: str | Path, params: Optional[AssignParams] = None,
                update: bool = False) -> AssignReport:
    """``tools/assign.py``: read ``path``'s items, embed the ones the current taxonomy has not seen (or, with
    ``update``, whose text changed) with the config's ``Discover`` embedder, assign them and write to the
    database at ``Discover.db_url``. An id stored with another text fails the batch before anything is embedded
    or written, unless ``update``."""

    items = read_new_items(path)
    with TagStore(database_url(config), create=False) as store:
        version = store.current_version()
        if version is None:
            raise ConfigError(f"{store.where}: no taxonomy yet; run tools/discover.py first")
        check_embedder(config, version)
        plan = plan_assignment(store, version.id, items)
        refuse_conflicts(plan, items, update)
        todo = [items[i] for i in sorted(plan.fresh + plan.again)]
        embeddings = (embed_texts(config, [item.text for item in todo]) if todo
                      else np.zeros((0, version.dim), np.float32))
        report = assign_new_items(store, todo, embeddings, params, update)
    report.skipped += len(plan.unchanged)
    return report
