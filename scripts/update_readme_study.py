"""Rewrite the README's generated study blocks from the committed result files.

Every number the README quotes about the loss study comes from a file under
``figures/study/`` through :func:`readme_blocks`; ``tests/study/test_readme_numbers.py``
fails when a block differs from what the files say (a number edited by hand, or results
that landed without this script being run).

    python scripts/update_readme_study.py          # rewrite the blocks in README.md
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
    return blocks


def rewrite(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
        text, n = pattern.subn(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)
        if n != 1:
            raise SystemExit(f"README.md has {n} '{name}' blocks; expected one")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = rewrite(text, readme_blocks())
    if args.check:
        if new != text:
            print("README.md's study blocks are stale: run python scripts/update_readme_study.py")
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
