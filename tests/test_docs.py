"""The docs: short README, links that resolve, and figures rendered from the benchmarks' output."""

from __future__ import annotations

import glob
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: str) -> set[str]:
    with open(path) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)  # no headings inside code blocks
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def links(path: str) -> list[str]:
    with open(path) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
        if not os.path.exists(path):
            broken.append(f"{target}: no file {os.path.relpath(path, ROOT)}")
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {os.path.relpath(path, ROOT)}")
    assert broken == [], broken


def test_the_link_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[ok](#top) [gone](missing.md) [bad](#nowhere)\n")
    assert links(str(page)) == ["#top", "missing.md", "#nowhere"]
    assert anchors(str(page)) == {"top"}
    assert slug("`frames/`") == "frames" and slug("Run on a cluster") == "run-on-a-cluster"


def test_the_readme_is_short():
    with open(PAGES[0]) as f:
        assert len(f.read().splitlines()) <= 300


def test_docs_are_what_the_benchmarks_output_renders():
    """docs/benchmarks.md and every generated block (figures, schemas) equal `python -m bench
    render` of bench/results/*.json: a figure typed or edited by hand fails here."""
    sys.path.insert(0, ROOT)
    from bench.report import render_all

    assert [os.path.relpath(p, ROOT) for p in render_all(check=True)] == []


def test_the_dedupe_default_is_the_benchmarks_choice():
    """`raydist dedupe`'s default threshold is the one `python -m bench search` chose, not typed."""
    import json

    sys.path.insert(0, ROOT)
    from bench.search import threshold
    from raydist.search.dedupe import THRESHOLD

    with open(os.path.join(ROOT, "bench", "results", "search.json")) as f:
        assert threshold(json.load(f)["result"])[0] == THRESHOLD
