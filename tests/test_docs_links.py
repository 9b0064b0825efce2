"""Every relative link of README.md and docs/*.md points at a file that exists (and, for a
link to a heading, at a heading that exists): the README moved most of its text into docs/,
so a renamed or missing page shows here, not in a reader's browser."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# [text](target) and ![alt](target), with an optional "title"; the text may hold one level of
# brackets (a badge: [![Open in Colab](...)](...)).
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")


def documents() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of each inline link outside code blocks and code spans.

    >>> links("see [a](docs/a.md) and `[b](no.md)`\\n```\\n[c](no.md)\\n```\\n![d](f.png)")
    [(1, 'docs/a.md'), (5, 'f.png')]
    """
    found, in_code = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code:
            found += [(number, m.group(1)) for m in LINK.finditer(CODE_SPAN.sub("", line))]
    return found


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered -1, -2, ...).

    >>> sorted(heading_anchors("# A b\\n## The `cpu-real` recipe: 250 steps\\n# A b"))
    ['a-b', 'a-b-1', 'the-cpu-real-recipe-250-steps']
    """
    anchors, seen, in_code = set(), {}, False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """One line per relative link of ``page`` whose file (or heading) does not exist."""
    broken = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(
                linked.read_text(encoding="utf-8")):
            broken.append(f"{where} (no such heading)")
    return broken


def test_every_relative_link_of_the_readme_and_docs_exists():
    pages = documents()
    assert len(pages) >= 10  # the README and the docs/ pages it moved its sections into
    broken = [line for page in pages for line in broken_links(page)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("# Here\n\n## A section: its name\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/here.md) [ok](docs/here.md#a-section-its-name) [ok](#top)\n"
                    "# Top\n"
                    "[gone](docs/gone.md) ![gone](figures/x.png) [web](https://example.org/x)\n"
                    "[bad](docs/here.md#no-section) `[code](skipped.md)`\n")
    assert broken_links(page, tmp_path) == [
        "README.md:3: docs/gone.md (no such file)",
        "README.md:3: figures/x.png (no such file)",
        "README.md:4: docs/here.md#no-section (no such heading)",
    ]
