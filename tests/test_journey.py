"""The Colab journey as a student lives it, with ``SMOKE=True`` (issue #20).

Each notebook runs with papermill on a fresh runtime: an empty working folder that shares
nothing with the ones before but the folder standing for Google Drive
(``CELEBSEG_DRIVE_ROOT``). Like Colab's ``/content``, every runtime's disk is at the same
path (``.../content``); after each notebook that folder is moved aside (``runtime-N-NB``,
kept for a look after a failure) and the next one starts from an empty one.

* ``01 -> 02 -> 04 -> 05 -> 07``, then ``04`` again, which must resume its finished run
  from Drive (nothing retrained), the data restored from the kept tar;
* a new journey with an empty Drive opens ``06`` first: it must stop with the one-line
  message that names notebook 01.

``scripts/check_runtime.py`` runs the ``01 -> 02 -> 04`` leg inside the Colab runtime it
rebuilds (``CELEBSEG_SIMULATED_RUNTIME=colab``: ``COLAB_RELEASE_TAG`` set, so the
notebooks take Colab's code paths; the install cell finds celebseg already installed).
Timings go to stdout and, when ``CELEBSEG_JOURNEY_TIMES`` names a file, to it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from celebseg_utils.interface import workspace

pytestmark = pytest.mark.slow
papermill = pytest.importorskip("papermill")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = {p.name[:2]: p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")}
SIMULATED = os.environ.get("CELEBSEG_SIMULATED_RUNTIME", "")
FULL = ("01", "02", "04", "05", "07")
COLAB_LEG = ("01", "02", "04")


class Journey:
    """Fresh runtimes, one after the other, sharing only ``drive``."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.drive = root, root / "drive"
        self.content = root / "content"
        self.played: list[tuple[str, float]] = []
        self.drive.mkdir()
        monkeypatch.setenv(workspace.DRIVE_ROOT_VARIABLE, str(self.drive))
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
        if SIMULATED == "colab":
            monkeypatch.setenv("COLAB_RELEASE_TAG", "runtime-check")
            monkeypatch.setenv("CELEBSEG_SPEC", "celebseg[download]")  # installed: pip is a no-op

    @property
    def keep(self) -> Path:
        return self.drive / workspace.SMOKE_KEEP_FOLDER

    def play(self, number: str, **params) -> dict:
        """Run notebook ``number`` on a fresh runtime; the executed notebook as a dict."""
        shutil.rmtree(self.content, ignore_errors=True)
        self.content.mkdir()
        name = NOTEBOOKS[number].name
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(NOTEBOOKS[number]), str(self.content / name),
                                       parameters={"SMOKE": True, **params},
                                       kernel_name="python3", cwd=str(self.content),
                                       progress_bar=False, log_output=False)
        finally:
            self.played.append((number, time.perf_counter() - start))
            # Whatever the runtime wrote stays in its own folder: SMOKE's celebseg-smoke/
            # and the executed notebook, nothing beside them (the tree stays clean).
            written = sorted(p.name for p in self.content.iterdir())
            self.content.rename(self.root / f"runtime-{len(self.played)}-{number}")
        assert written == sorted([workspace.SMOKE_DIR.name, name]), written
        return json.loads((self.root / f"runtime-{len(self.played)}-{number}" / name).read_text())

    def report(self, title: str) -> None:
        line = f"{title}: " + ", ".join(f"{n} {s:.0f} s" for n, s in self.played) + \
            f" (total {sum(s for _, s in self.played):.0f} s)"
        print(line)
        if os.environ.get("CELEBSEG_JOURNEY_TIMES"):
            with open(os.environ["CELEBSEG_JOURNEY_TIMES"], "a") as fh:
                fh.write(line + "\n")


def _text(nb: dict) -> str:
    """Everything the notebook showed as text: streams, Markdown and plain-text results."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append("".join(out["text"]))
            elif "data" in out:
                parts += ["".join(out["data"].get(kind, "")) for kind in ("text/markdown", "text/plain")]
    return "\n".join(parts)


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_journey_01_02_04_05_07_then_04_resumes_from_drive(tmp_path, monkeypatch):
    journey = Journey(tmp_path, monkeypatch)
    keep = journey.keep
    legs = COLAB_LEG if SIMULATED else FULL

    journey.play("01")
    assert (keep / "data" / "CelebAMask-HQ.zip").is_file()
    assert not (keep / "data" / workspace.PREPARED_ARCHIVE).exists()

    nb = journey.play("02")
    assert "Prepared **48** label maps" in _text(nb)  # from the archive 01 kept on Drive
    kept = keep / "data" / workspace.PREPARED_ARCHIVE
    assert kept.is_file()

    nb = journey.play("04")
    assert f"restored from {kept}" in _text(nb)  # a fresh runtime: the data came from Drive
    run = keep / "runs" / "sparse_ce"
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 1
    assert (run / "results.json").is_file()

    if "05" in legs:
        journey.play("05")
        assert (keep / "runs" / "pixel_weighted_ce" / "results.json").is_file()
    if "07" in legs:
        runs = {name: _files(keep / "runs" / name) for name in ("sparse_ce", "pixel_weighted_ce")}
        nb = journey.play("07", RUNS=["sparse_ce", "pixel_weighted_ce"])
        assert f"restored from {kept}" in _text(nb)
        # 07 compared the runs 04 and 05 kept: nothing retrained nor re-evaluated.
        assert {name: _files(keep / "runs" / name) for name in runs} == runs
        assert not (keep / "runs" / "dice").exists()

    # A disconnect, then notebook 04 again on a fresh runtime: the run is finished on
    # Drive, so it is returned as it is, not trained again.
    before = _files(run)
    nb = journey.play("04")
    assert f"restored from {kept}" in _text(nb)
    assert _files(run) == before
    assert "Epoch 1/1" not in _text(nb)
    journey.report("journey " + " -> ".join([*legs, "04"]) + (f" ({SIMULATED})" if SIMULATED else ""))


@pytest.mark.skipif(SIMULATED != "", reason="the runtime check plays the 01 -> 02 -> 04 leg only")
def test_journey_opening_06_first_stops_with_one_line_naming_notebook_01(tmp_path, monkeypatch):
    journey = Journey(tmp_path, monkeypatch)
    with pytest.raises(papermill.PapermillExecutionError) as stop:
        journey.play("06")
    error = stop.value
    assert error.ename == "NotebookStop"
    assert f"run notebook {workspace.DOWNLOAD_NOTEBOOK} first" in error.evalue
    assert "\n" not in error.evalue
    # Jupyter shows that one line, not a traceback.
    executed = json.loads((tmp_path / "runtime-1-06" / NOTEBOOKS["06"].name).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["traceback"] for e in errors] == [[f"NotebookStop: {error.evalue}"]]
    assert not (journey.keep / "runs").exists()  # stopped before any training
    journey.report("journey 06 first")
