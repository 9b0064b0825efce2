"""docs/RELIABILITY.md lists exactly the cases the reliability suite runs."""

import re
import subprocess
import sys

import pytest

from harness import AREAS, REPO_ROOT


@pytest.mark.slow  # collects the whole suite in a fresh interpreter
def test_reliability_doc_lists_every_case():
    proc = subprocess.run([sys.executable, "scripts/make_reliability_doc.py", "--check"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = (REPO_ROOT / "docs" / "RELIABILITY.md").read_text()
    sections = re.findall(r"^## .* \((\d+) cases\)$", doc, flags=re.M)
    rows = re.findall(r"^\| \d+ \| ", doc, flags=re.M)
    total = int(re.search(r"^\*\*(\d+) cases tried", doc, flags=re.M).group(1))
    # One section per area of the issue, each with cases; the counts add up.
    assert len(sections) == len(AREAS) and all(int(n) > 0 for n in sections)
    assert sum(map(int, sections)) == len(rows) == total
