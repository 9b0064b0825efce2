"""Write the numbered notebooks in ``notebooks/`` from the Python source in ``scripts/notebooks/``.

The notebooks are generated so that a review reads plain Python and Markdown, and so that
every notebook shares the same install, parameters and SMOKE cells. What a notebook says is
one small story file, ``scripts/notebooks/NN_name.py`` (its ``build()`` returns the
notebook ``NN_name.ipynb``); the cells they share and the writing live in
``scripts/notebooks/nb_cells.py`` (and ``nb_training.py`` for 04-06). The committed
``.ipynb`` files must equal this script's output (``tests/test_notebook_hygiene.py``).

    python scripts/make_notebooks.py            # (re)write notebooks/*.ipynb
    python scripts/make_notebooks.py --check    # exit 1 when a committed notebook differs

A fork, branch or tag gets its own notebooks (badges and install cell) in one command:

    python scripts/make_notebooks.py --repository you/celebseg --ref v0.2
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STORIES = REPO_ROOT / "scripts" / "notebooks"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
for _path in (REPO_ROOT, STORIES):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import nb_cells  # noqa: E402  (needs the path above)
from nb_cells import render  # noqa: E402


def _story(path: Path):
    spec = importlib.util.spec_from_file_location(f"notebook_story_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: file name -> builder, in reading order (one story file per notebook).
NOTEBOOKS = {f"{path.stem}.ipynb": _story(path).build
             for path in sorted(STORIES.glob("[0-9][0-9]_*.py"))}


def render_all() -> dict[str, str]:
    """``{file name: notebook JSON text}`` for every notebook, exactly as written to disk."""
    return {file: render(build()) for file, build in NOTEBOOKS.items()}

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a notebook in notebooks/ differs")
    parser.add_argument("--out", type=Path, default=NOTEBOOK_DIR, help="folder to write to")
    parser.add_argument("--repository", default=nb_cells.REPOSITORY, metavar="OWNER/NAME",
                        help="GitHub repository the badges and the install cell point at")
    parser.add_argument("--ref", metavar="BRANCH_OR_TAG",
                        help="branch or tag to open and install (default: the default branch)")
    args = parser.parse_args(argv)
    nb_cells.REPOSITORY, nb_cells.REF = args.repository, args.ref
    stale = []
    for file, text in render_all().items():
        path = args.out / file
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(file)
        if not args.check:
            from celebseg_utils.fileio import atomic_write_text

            atomic_write_text(path, text)
    if args.check and stale:
        print("out of date (run python scripts/make_notebooks.py): " + ", ".join(stale))
        return 1
    print(("checked" if args.check else "wrote") + f" {len(NOTEBOOKS)} notebooks"
          + (f", {len(stale)} changed" if stale and not args.check else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
