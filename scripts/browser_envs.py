"""Build the Jupyter front-end environments of the browser test (tests/interface/test_viewer_browser.py).

One virtual environment per ipywidgets major, each holding a Jupyter front end, the widget
JavaScript that pairs with that major, and the kernel side (ipywidgets, ipykernel) pinned:

``ipywidgets7``  Colab's widget stack: ipywidgets 7.7.1, widgetsnbextension 3.6.10, classic
                 Notebook 6.5.7, ipykernel 6.17.1, jupyter_client 7.4.9, IPython 7.34.0,
                 traitlets 5.7.1; and JupyterLab 3.6 with jupyterlab_widgets 1.1.1, the
                 labextension released with ipywidgets 7.7 (ipywidgets 7.7.1 only asks for
                 ``jupyterlab_widgets>=1``, which is how Colab ends up listing 3.0.16, the
                 ipywidgets-8 one; Colab's own front end is not Jupyter and ignores it).
``ipywidgets8``  Kaggle's: ipywidgets 8.1.5 with its widgetsnbextension 4.0.13 and
                 jupyterlab_widgets 3.0.13, JupyterLab 4, and nbclassic (the classic Notebook
                 front end on jupyter_server 2) for the classic check.

TensorFlow and the package's dependencies are not installed again (about 1 GB each): a
``.pth`` file appends the project's own environment -- the interpreter that runs this
script, normally ``.venv`` -- to the end of ``sys.path``, so the kernel imports ipywidgets,
IPython and ipykernel from its own environment first and TensorFlow, Keras, numpy and Pillow
from the project's. That is also why each environment is made with this interpreter's
Python: compiled packages must match it. The .pth is written after pip has finished, so pip
never sees (or touches) the project's packages.

Idempotent: an environment whose stamp records the same pins, base and Python is left
alone; any change rebuilds it from scratch. Prints what it did and how long it took.

    .venv/bin/python scripts/browser_envs.py            # build what is missing or stale
    .venv/bin/python scripts/browser_envs.py --check    # exit 1 unless all are ready

Where: ``$CELEBSEG_BROWSER_ENVS``, else ``~/.cache/celebseg/browser-envs`` (shared by the
checkouts of one machine; pip's own cache makes a rebuild cheap).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ENVS: dict[str, list[str]] = {
    "ipywidgets7": [
        "ipywidgets==7.7.1", "widgetsnbextension==3.6.10", "notebook==6.5.7",
        "ipykernel==6.17.1", "jupyter_client==7.4.9", "ipython==7.34.0", "traitlets==5.7.1",
        "jupyterlab==3.6.8", "jupyterlab_widgets==1.1.1",
    ],
    "ipywidgets8": [
        "ipywidgets==8.1.5", "widgetsnbextension==4.0.13", "jupyterlab_widgets==3.0.13",
        "jupyterlab==4.6.6", "nbclassic==1.3.3", "ipykernel==7.4.0",
    ],
}
STAMP = ".celebseg-env.json"
BASE_PTH = "zz_celebseg_base.pth"


def root() -> Path:
    return Path(os.environ.get("CELEBSEG_BROWSER_ENVS") or Path.home() / ".cache/celebseg/browser-envs")


def base_dirs() -> list[str]:
    """The site-packages of this interpreter, which the environments append."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def wanted(name: str) -> dict:
    return {"pins": ENVS[name], "base": base_dirs(), "python": sys.version.split()[0]}


def python_of(name: str) -> Path:
    return root() / name / "bin" / "python"


def is_ready(name: str) -> bool:
    stamp = root() / name / STAMP
    try:
        return json.loads(stamp.read_text()) == wanted(name) and python_of(name).exists()
    except (OSError, ValueError):
        return False


def build(name: str) -> None:
    target = root() / name
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # venv takes this interpreter's base Python, so the version matches the project's .venv.
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    py = str(python_of(name))
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *ENVS[name]], check=True)
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # addsitedir (not a bare path line) so the base's own .pth files run too, e.g. the
    # editable install of this package.
    Path(site, BASE_PTH).write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in base_dirs()))
    got = subprocess.run([py, "-c", "import ipywidgets, numpy, PIL; print(ipywidgets.__version__)"],
                         check=True, capture_output=True, text=True).stdout.strip()
    pinned = next(p.split("==")[1] for p in ENVS[name] if p.startswith("ipywidgets=="))
    if got != pinned:
        raise SystemExit(f"error: {target} imports ipywidgets {got}, not {pinned}")
    (target / STAMP).write_text(json.dumps(wanted(name), indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report; exit 1 unless all are ready")
    args = ap.parse_args(argv)
    missing = [n for n in ENVS if not is_ready(n)]
    if args.check:
        for n in ENVS:
            print(f"{n}: {'ready' if n not in missing else 'missing or stale'} ({root() / n})")
        return 1 if missing else 0
    for n in ENVS:
        if n not in missing:
            print(f"{n}: up to date ({root() / n})")
            continue
        start = time.monotonic()
        build(n)
        print(f"{n}: built in {time.monotonic() - start:.0f} s ({root() / n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
