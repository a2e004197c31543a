"""The report of a discovery run: ``report.png`` (2-D map + sizes) and ``report.md`` (keywords, samples).

The map is a PCA-2 projection of the embeddings (at most 20,000 points drawn, a fixed-seed sample), one colour
per tag, outliers grey, each tag's name at the mean of its points. Tag names are Chinese: when matplotlib
knows a CJK font (Noto Sans CJK, WenQuanYi, SimHei, ...), it writes them; otherwise the map and the bar chart
show tag keys, and ``report.md`` (which any viewer renders) carries the names.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from paddle_tag.discover.taxonomy import Taxonomy
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

CJK_FONT_HINTS = ("CJK", "WenQuanYi", "SimHei", "SimSun", "Hei", "Song", "Ming", "Kai", "Droid Sans Fallback",
                  "AR PL", "Source Han", "PingFang", "Microsoft YaHei")
CJK_FONT_FILES = ("wqy", "notosanscjk", "notoserifcjk", "droidsansfallback", "simhei", "simsun", "msyh",
                  "sourcehan", "uming", "ukai")
MAX_POINTS = 20_000


def cjk_font() -> Optional[str]:
    """The name of an installed font with Chinese glyphs, or None.

    matplotlib caches its font list on first use, so a font installed later (``apt-get install
    fonts-wqy-microhei``) is missing from it: the system font files are then searched and added by name.
    """
    from matplotlib import font_manager

    def known() -> Optional[str]:
        names = sorted({f.name for f in font_manager.fontManager.ttflist})
        return next((n for hint in CJK_FONT_HINTS for n in names if hint.lower() in n.lower()), None)

    if known() is None:
        for path in font_manager.findSystemFonts():
            if any(hint in Path(path).name.lower() for hint in CJK_FONT_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable font file is skipped, not fatal
                    logger.debug("could not add font %s", path)
    return known()


def project_2d(embeddings: np.ndarray) -> np.ndarray:
    """``(N, 2)`` PCA projection (numpy SVD, deterministic up to sign, fixed by making the largest entry
    of each component positive)."""
    centred = embeddings.astype(np.float64) - embeddings.mean(axis=0, keepdims=True)
    if centred.shape[1] < 2 or centred.shape[0] < 2:
        return np.zeros((embeddings.shape[0], 2))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(axis=1)])
    return centred @ (comps * signs[:, None]).T


def plot_png(path: Path, taxonomy: Taxonomy, embeddings: np.ndarray, labels: np.ndarray, seed: int) -> list[str]:
    """The map and the sizes bar chart side by side, written atomically; returns the tag labels drawn (names
    with a CJK font, keys without)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    names = [t.name if font else str(t.key) for t in taxonomy.tags]
    points = project_2d(embeddings)
    shown = np.arange(len(labels))
    if len(shown) > MAX_POINTS:
        shown = np.sort(np.random.default_rng(seed).choice(len(labels), MAX_POINTS, replace=False))
    cmap = plt.get_cmap("tab20")
    with plt.rc_context({"font.sans-serif": [font, "DejaVu Sans"] if font else ["DejaVu Sans"],
                         "axes.unicode_minus": False}):
        fig, (ax_map, ax_bar) = plt.subplots(1, 2, figsize=(16, 7), gridspec_kw={"width_ratios": [3, 2]})
        out = shown[labels[shown] < 0]
        ax_map.scatter(points[out, 0], points[out, 1], s=3, c="lightgrey", label="unassigned")
        for tag in taxonomy.tags:
            mine = shown[labels[shown] == tag.key]
            colour = cmap(tag.key % 20)
            ax_map.scatter(points[mine, 0], points[mine, 1], s=3, color=colour)
            members = labels == tag.key
            if members.any():
                cx, cy = points[members].mean(axis=0)
                ax_map.text(cx, cy, names[tag.key], fontsize=8, ha="center", va="center",
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.8})
        ax_map.set_title(f"{len(taxonomy.tags)} tags, {taxonomy.outlier_share():.1%} unassigned (PCA-2 of the "
                         "embeddings)")
        ax_map.set_xticks([])
        ax_map.set_yticks([])
        sizes = [t.size for t in taxonomy.tags]
        ax_bar.barh(range(len(sizes)), sizes, color=[cmap(t.key % 20) for t in taxonomy.tags])
        ax_bar.set_yticks(range(len(sizes)), names, fontsize=7)
        ax_bar.invert_yaxis()
        ax_bar.set_xlabel("items")
        ax_bar.set_title("tag sizes" + ("" if font else " (keys: names in report.md)"))
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return names


def samples_of(taxonomy: Taxonomy, key: int, n: int) -> list[str]:
    """The ``n`` items most similar to the tag's centroid (the most typical ones; deterministic)."""
    scored = [(-a.score, i) for i, a in enumerate(taxonomy.assignments) if a.tag_key == key]
    return [taxonomy.items[i].text for _, i in sorted(scored)[:n]]


def markdown(taxonomy: Taxonomy, metrics: dict[str, Any], samples: int) -> str:
    """``report.md``: the figures, then one section per tag (keywords with weights, sample items)."""
    quality = ", ".join(f"{name} {metrics[k]:.3f}" for k, name in (("nmi", "NMI"), ("ari", "ARI"), ("purity", "purity"))
                        if k in metrics)
    lines = ["# Tag discovery report", "",
             f"- items: {metrics.get('items', len(taxonomy.items))} (blank skipped: {metrics.get('skipped_blank', 0)})",
             f"- tags: {len(taxonomy.tags)}; unassigned (outlier) share: {taxonomy.outlier_share():.2%}",
             f"- embedder: `{taxonomy.embedder}`"]
    if quality:
        lines.append(f"- against the known labels: {quality}")
    timings = metrics.get("timings_s", {})
    if timings:
        lines.append("- time (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    lines += ["", "![map and sizes](report.png)", ""]
    for tag in taxonomy.tags:
        keywords = ", ".join(f"{w} ({x:.3f})" for w, x in tag.keywords)
        lines += [f"## {tag.key}. {tag.name} — {tag.size} items", "", f"Keywords: {keywords or '(none)'}", ""]
        lines += [f"- {text}" for text in samples_of(taxonomy, tag.key, samples)] + [""]
    return "\n".join(lines)


def write_report(out_dir: Path, taxonomy: Taxonomy, embeddings: np.ndarray, labels: np.ndarray,
                 metrics: dict[str, Any], seed: int = 42, samples: int = 3) -> None:
    """``report.png`` and ``report.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    plot_png(out_dir / "report.png", taxonomy, embeddings, labels, seed)
    atomic_write_text(out_dir / "report.md", markdown(taxonomy, metrics, samples))
