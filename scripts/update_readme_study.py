"""Rewrite the generated study blocks of the README and docs/study.md from the result files.

Every number the README (and ``docs/study.md``, which holds the early study's full tables)
quotes about the loss study comes from a file under ``figures/study/`` through
:func:`readme_blocks`; ``tests/study/test_readme_numbers.py`` fails when a block differs
from what the files say (a number edited by hand, or results that landed without this
script being run).

    python scripts/update_readme_study.py          # rewrite the blocks
    python scripts/update_readme_study.py --check  # exit 1 when a block is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STUDY = REPO / "figures" / "study"
#: Where each block lives, relative to the repository: the README unless named here.
BLOCK_FILES = {"study": "docs/study.md"}


def block_file(name: str) -> str:
    """The file that holds block ``name``.

    >>> block_file("plateau"), block_file("study")
    ('README.md', 'docs/study.md')
    """
    return BLOCK_FILES.get(name, "README.md")


def readme_blocks(study_root: Path = STUDY) -> dict[str, str]:
    """Block name -> its Markdown, from the result files under ``study_root``."""
    from celebseg_utils.study import plateau
    from celebseg_utils.study.report import budget_title, study_markdown

    blocks = {}
    ladder = study_root / "plateau" / "plateau.json"
    if ladder.exists():
        blocks["plateau"] = plateau.ladder_markdown(json.loads(ladder.read_text()))
    args = study_root / "study_args.json"
    done = sorted(study_root.glob("arms/*/seed*/test.json"))
    if not (args.exists() or done):
        blocks["study-progress"] = "not started yet: it begins once the ladder has found the plateau."
    else:
        settings = json.loads(args.read_text()) if args.exists() else {}
        total = len(settings.get("arms", [])) * int(settings.get("seeds", 0))
        runs = [f"`{p.parent.parent.name}` seed {p.parent.name[4:]}" for p in done]
        steps = settings.get("steps")
        blocks["study-progress"] = (
            f"{len(done)} of {total or '?'} runs finished"
            + (f" at {steps:,} steps each" if steps else "") + ": "
            + (", ".join(runs) if runs else "none yet") + ".")
    early = study_root / "budget250" / "study.json"
    if early.exists():
        report = json.loads(early.read_text())
        # the block's first line states the budget once for all its tables
        body = study_markdown(report, budget_in_headings=False).split("\n", 2)[2].replace(
            "\n## ", "\n#### ")
        blocks["study"] = f"**Early regime: {budget_title(report)}.** " + body
        # the README keeps the headline table; docs/study.md every table
        blocks["study-early"] = blocks["study"].split("\n#### ", 1)[0].rstrip("\n") + "\n"
    return blocks


def rewrite(text: str, blocks: dict[str, str], where: str = "README.md") -> str:
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
        text, n = pattern.subn(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)
        if n != 1:
            raise SystemExit(f"{where} has {n} '{name}' blocks; expected one")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    blocks = readme_blocks()
    stale = []
    for where in sorted({block_file(name) for name in blocks}):
        path = REPO / where
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, {n: b for n, b in blocks.items() if block_file(n) == where}, where)
        if new == text:
            continue
        if args.check:
            stale.append(where)
        else:
            path.write_text(new, encoding="utf-8")
    if stale:
        print(f"stale study blocks in {', '.join(stale)}: run python scripts/update_readme_study.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
