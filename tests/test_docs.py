"""The README stays a newcomer's page and the documentation site stays whole (mkdocs itself runs in .ci/run)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_readme_is_short_and_has_no_lab_notebook():
    assert len(README.splitlines()) <= 250
    assert not re.findall(r"#\d+\b|issue \d+", README), "issue numbers belong in the docs' logs, not the README"
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", README), "dated runs belong in docs/results and the logs"


def test_quickstart_is_two_commands_and_ci_runs_the_test_one():
    block = re.search(r"```bash\n(.*?)```", section(README, "Quickstart"), flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    assert 'make test VENV="$venv"' in (REPO / ".ci/run").read_text(encoding="utf-8")


def test_security_section_is_short_and_links_its_page():
    body = section(README, "Security and reliability").strip().splitlines()
    assert len(body) <= 12 and "docs/security.md" in "\n".join(body)


def test_readme_links_resolve():
    for target in LINK.findall(README):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        assert (REPO / path).is_file(), f"README links to a missing file: {target}"
        if anchor:
            headings = [h.strip() for h in re.findall(r"^#+ (.*)$", (REPO / path).read_text(encoding="utf-8"), re.M)]
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"README links to a missing heading: {target}"


def nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in nav_files(value)]
    return []


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = nav_files(config["nav"])
    pages = sorted(str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md"))
    assert sorted(nav) == pages
    assert config["strict"] is True


def test_docs_extra_is_pinned():
    cfg = (REPO / "setup.cfg").read_text(encoding="utf-8")
    extra = re.search(r"^docs =\n((?:    .*\n)+)", cfg, flags=re.M).group(1)
    pins = [line.strip() for line in extra.splitlines()]
    assert pins and all("==" in pin for pin in pins) and any(p.startswith("mkdocs-material==") for p in pins)
