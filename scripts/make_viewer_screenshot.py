"""A browser screenshot of the multi-model viewer on real faces: figures/viewer/viewer_browser.png.

Serves a one-cell notebook from the browser test's JupyterLab 4 + ipywidgets 8 environment
(``scripts/browser_envs.py``), runs it in headless Chromium and screenshots the widget: the
controls, the picture and the per-class table, as a student sees them. The notebook opens
the viewer on the test faces with a hat, worst first by the last model given. Reuses the
Jupyter server and WebDriver helpers of ``tests/interface/test_viewer_browser.py``.

    CELEBSEG_BROWSER_ENVS=/tmp/viewer-work/browser-envs .venv/bin/python \\
        scripts/make_viewer_screenshot.py --prepared /tmp/realprep \\
        --model "sparse_ce 1000 steps=/work/study-work/plateau/steps1000/runs/sparse_ce/seed0/final.keras" \\
        --model "sparse_ce 2000 steps=/work/study-work/plateau/steps2000/runs/sparse_ce/seed0/final.keras" \\
        --model "sparse_ce 8000 steps=/work/study-work/plateau/steps8000/runs/sparse_ce/seed0/final.keras" \\
        --cache-dir /tmp/viewer-work/cache
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _browser_test():
    sys.path.insert(0, str(REPO))
    spec = importlib.util.spec_from_file_location(
        "viewer_browser_test", REPO / "tests" / "interface" / "test_viewer_browser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--classes", nargs="*", default=["hat"])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--image-size", type=int, default=200)
    ap.add_argument("--out", default=str(REPO / "figures" / "viewer" / "viewer_browser.png"))
    args = ap.parse_args(argv)
    models = dict(text.partition("=")[::2] for text in args.model)
    if any(not name or not Path(path).exists() for name, path in models.items()):
        print("error: --model: give NAME=PATH of existing models", file=sys.stderr)
        return 2
    t = _browser_test()
    if not t.browser_envs.is_ready("ipywidgets8"):
        print(f"error: no ipywidgets8 environment under {t.browser_envs.root()}: run "
              f"`make browser-setup`", file=sys.stderr)
        return 2
    chrome = {"chromium": shutil.which("chromium"), "chromedriver": shutil.which("chromedriver")}
    worst = list(models)[-1]
    source = (f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
              "from celebseg_utils.interface.widgets import MaskViewer\n"
              f"viewer = MaskViewer({args.prepared!r}, 'test', models={models!r}, "
              f"cache_dir={args.cache_dir!r}, image_size={args.image_size}, progress=False)\n"
              f"viewer.sort_by('worst', {worst!r})\n"
              f"viewer.filter_classes({args.classes!r})\n"
              "viewer")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = scratch / "served"
        folder.mkdir()
        nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [t._code(source)]}
        (folder / "viewer.ipynb").write_text(json.dumps(nb))
        server = t.JupyterServer("ipywidgets8", "lab", folder, scratch)
        browser = None
        try:
            browser = t.Browser(chrome, scratch)
            browser.cmd("POST", "/window/rect", {"width": 1300, "height": 2200})
            browser.get(server.url)
            browser.wait("the kernel", lambda: browser.js("""
                const app = window.jupyterapp, w = app && app.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return !!(k && k.status === 'idle' && w.content && w.content.widgets.length === 1);"""), 180)
            browser.js(t.RUN_ALL["lab"])
            browser.wait("the viewer", lambda: browser.js_async(t.READ_IMAGE, 0), 600)
            time.sleep(2)  # the table and labels arrive with the picture; let them lay out
            # the cell's input and the notebook toolbar are not the viewer: collapse the input
            browser.js("window.jupyterapp.commands.execute('notebook:hide-cell-code'); return true;")
            time.sleep(1)
            widget = browser.js("return document.querySelector('.widget-vbox');")
            out = Path(args.out)
            browser.screenshot(out, widget)
            print(f"wrote {out}")
        finally:
            if browser is not None:
                browser.quit()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
