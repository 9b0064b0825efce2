"""Write docs/RELIABILITY.md from the ``reliability`` marks of the tests.

    python scripts/make_reliability_doc.py            # rewrite the document
    python scripts/make_reliability_doc.py --check    # exit 1 if the cases listed are stale

The table rows come from the marks (what was tried, what the test asserts happened); the
pass counts from the latest outcome of each case (``.pytest_cache/celebseg-reliability.json``,
which ``tests/conftest.py`` updates after every pytest run), so run ``make test-all`` first. ``--check`` compares the rows only, not the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "RELIABILITY.md"
RESULTS = REPO_ROOT / ".pytest_cache" / "celebseg-reliability.json"
AREA_TITLES = {
    "data": "Data: broken, missing and stray files",
    "archives": "Archives: hostile and broken downloads",
    "runs": "Runs: killed, out of disk, diverging",
    "cli": "Command line: options, models and inputs",
}
INTRO = """\
# Reliability

Users run celebseg in flaky notebooks, on a 30,000-image download. Every case below drives a
`celebseg` command or a package function with bad or hostile input, and asserts that it ends in
success or in a one-line `error: ...` with exit status 2 (130 for an interrupt), with no
traceback and no lost or half-written output. Each row is one test of `make test-all` (most in
`tests/reliability/test_reliability_*.py`); this file is generated from their marks by
`python scripts/make_reliability_doc.py`, and `tests/reliability/test_reliability_doc.py` fails when the
list goes stale.
"""


class _Collector:
    def __init__(self):
        self.cases: list[tuple[str, str, str, str]] = []

    def pytest_collection_modifyitems(self, items):
        for item in items:
            mark = item.get_closest_marker("reliability")
            if mark is not None:
                area, tried, outcome = mark.args
                self.cases.append((area, tried, outcome, item.nodeid))


def collect_cases() -> list[tuple[str, str, str, str]]:
    """``(area, tried, outcome, nodeid)`` of every reliability case, in file order."""
    collector = _Collector()
    # Every test module: a case already covered by a module's own tests is marked there.
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(REPO_ROOT / "tests")],
                       plugins=[collector])
    if code not in (0, 5):
        raise SystemExit(f"error: collecting the reliability tests failed (pytest exit {code})")
    unknown = {c[0] for c in collector.cases} - set(AREA_TITLES)
    if unknown:
        raise SystemExit(f"error: unknown reliability areas {sorted(unknown)}")
    return collector.cases


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_rows(cases) -> list[str]:
    lines = []
    for area, title in AREA_TITLES.items():
        rows = [c for c in cases if c[0] == area]
        if not rows:
            continue
        lines += ["", f"## {title} ({len(rows)} cases)", "",
                  "| # | tried | what happens (asserted) | test |", "|---:|---|---|---|"]
        for i, (_, tried, outcome, nodeid) in enumerate(rows, start=1):
            name = nodeid.split("::", 1)[1]
            lines.append(f"| {i} | {_cell(tried)} | {_cell(outcome)} | `{_cell(name)}` |")
    return lines


def render_counts(cases) -> list[str]:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    ran = [results.get(c[3]) for c in cases]
    passed = sum(1 for r in ran if r == "passed")
    line = f"**{len(cases)} cases tried"
    if all(r is not None for r in ran):
        failed = sum(1 for r in ran if r == "failed")
        skipped = sum(1 for r in ran if r == "skipped")
        line += f"; at the latest run of each, {passed} passed, {failed} failed"
        line += f", {skipped} skipped**" if skipped else "**"
    else:
        line += "** (run `make test-all` to fill in the counts)"
    return ["", line]


def render(cases) -> str:
    return "\n".join([INTRO.rstrip(), *render_counts(cases), *render_rows(cases)]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the document's cases differ from the tests' marks")
    args = parser.parse_args(argv)
    cases = collect_cases()
    if args.check:
        current = DOC.read_text().splitlines() if DOC.exists() else []
        want = render_rows(cases)
        have = [ln for ln in current if ln.startswith(("| ", "## "))]
        if have != [ln for ln in want if ln.startswith(("| ", "## "))]:
            print(f"error: {DOC} is stale: run python scripts/make_reliability_doc.py",
                  file=sys.stderr)
            return 1
        print(f"{DOC.name}: {len(cases)} cases, up to date")
        return 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(cases))
    print(f"wrote {DOC} ({len(cases)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
