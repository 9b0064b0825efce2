"""The README quotes the study through generated blocks: each equals what the files say."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import update_readme_study as readme_study  # noqa: E402


def test_every_generated_block_equals_what_the_result_files_say():
    blocks = readme_study.readme_blocks()
    assert {"plateau", "study-progress", "study", "study-early"} <= set(blocks)
    assert readme_study.block_file("study-early") == "README.md"
    for name, body in blocks.items():
        text = (REPO / readme_study.block_file(name)).read_text(encoding="utf-8")
        start, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
        assert text.count(start) == 1, name
        quoted = text.split(start, 1)[1].split(end, 1)[0]
        assert quoted == body.rstrip("\n") + "\n", (
            f"README's {name} block is stale: run python scripts/update_readme_study.py")


def test_a_number_changed_by_hand_is_caught():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    edited = text.replace("| sparse_ce | 3 | 0.299 ± 0.021", "| sparse_ce | 3 | 0.399 ± 0.021", 1)
    assert edited != text  # the early table quotes the baseline's mean F1
    readme_blocks = {n: b for n, b in readme_study.readme_blocks().items()
                     if readme_study.block_file(n) == "README.md"}
    assert readme_study.rewrite(edited, readme_blocks) == text
