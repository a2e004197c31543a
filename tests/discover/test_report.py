"""The run report: report.png (map + sizes, tag names drawn with a CJK font when one is installed) and report.md."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import blobs

from paddle_tag.discover import report
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy


def small_run() -> tuple[Taxonomy, np.ndarray, np.ndarray]:
    vectors, truth = blobs(3, 10, dim=8, seed=2)
    centroids = np.stack([vectors[truth == k].mean(axis=0) for k in range(3)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    names = ["体育·比赛·球队", "财经·股市·央行", "科技·手机·芯片"]
    tags = [Tag(k, names[k], [(names[k].split("·")[0], 0.5)], centroids[k].astype(np.float32), 10) for k in range(3)]
    items = [Item(str(i), f"第{i}条新闻标题") for i in range(30)]
    assignments = [Assignment(str(i), int(truth[i]), round(float(vectors[i] @ centroids[truth[i]]), 6))
                   for i in range(30)]
    return Taxonomy(tags, items, assignments, embedder="tfidf", params={}), vectors, truth


def draw(tmp_path) -> tuple[list[str], list[str]]:
    taxonomy, vectors, labels = small_run()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawn = report.plot_png(tmp_path / "report.png", taxonomy, vectors, labels, seed=0)
    return drawn, [str(w.message) for w in caught]


def test_names_are_drawn_with_a_cjk_font_when_one_is_installed(tmp_path):
    if report.cjk_font() is None:
        pytest.skip("no CJK font here (apt-get install fonts-wqy-microhei; .ci/run installs it)")
    drawn, caught = draw(tmp_path)
    assert drawn == ["体育·比赛·球队", "财经·股市·央行", "科技·手机·芯片"]
    assert not [m for m in caught if "missing from" in m]  # every glyph found: no tofu boxes
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_cjk_font_keys_are_drawn_and_no_glyph_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "cjk_font", lambda: None)
    drawn, caught = draw(tmp_path)
    assert drawn == ["0", "1", "2"]
    assert not [m for m in caught if "missing from" in m]
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_markdown_has_names_keywords_and_typical_items(tmp_path):
    taxonomy, vectors, labels = small_run()
    report.write_report(tmp_path, taxonomy, vectors, labels, {"items": 30, "nmi": 0.5, "timings_s": {"name": 0.1}},
                        samples=2)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## 0. 体育·比赛·球队 — 10 items" in text and "Keywords: 体育 (0.500)" in text
    assert "NMI 0.500" in text and "![map and sizes](report.png)" in text
    best = max((a.score, i) for i, a in enumerate(taxonomy.assignments) if a.tag_key == 0)[1]
    assert f"- {taxonomy.items[best].text}" in text
