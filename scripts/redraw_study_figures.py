"""Draw the loss study's committed figures again from their ``study.json``, measuring nothing.

After a change to the figures' code (``celebseg_utils/study/report.py``), this redraws each
given study folder's figures where they are committed (``FOLDER/figures/`` or ``FOLDER``):
per-class F1, the rare classes' precision against recall, the learning curves when the
study has them, and the test-face grid where the runs' predictions and the prepared folder
are on this machine (:func:`celebseg_utils.study.report.redraw_study_figures`).

    python scripts/redraw_study_figures.py figures/study/budget250 figures/study/plateau/steps*
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="study folders (with study.json)")
    args = parser.parse_args(argv)
    from celebseg_utils.errors import CelebsegError
    from celebseg_utils.study.report import redraw_study_figures

    for folder in args.folders:
        try:
            written = redraw_study_figures(folder)
        except CelebsegError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{folder}: " + ", ".join(p.name for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
