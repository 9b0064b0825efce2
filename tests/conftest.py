"""Shared fixtures. Test folders mirror the package's rooms (tests/data, tests/models, ...)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real data kept beside the checkout, never committed: ``../shared/data``.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(name: str, probe: str) -> Path:
    """``../shared/data/<name>`` when ``probe`` (a file in it) is there; else the test is
    skipped, with a reason that says where the data was looked for. The one way tests
    reach the shared real data: the fixtures below."""
    folder = SHARED_DATA / name
    if not (folder / probe).is_file():
        pytest.skip(f"real data not found: no {folder / probe} (the real data lives in "
                    f"../shared/data beside the checkout)")
    return folder


@pytest.fixture(scope="session")
def real_samples_dir() -> Path:
    """The two real CelebAMask-HQ samples (N.jpg photo, N.png fused label map)."""
    return shared_data("celebamask_hq_samples", "0.png")


@pytest.fixture(scope="session")
def real_mini_dir() -> Path:
    """The 4,000 real faces: ``images/<k>.jpg`` and palette ``labels/<k>.png``."""
    return shared_data("celebamask_hq_mini", "labels/0.png")


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """One prepared folder of 24 synthetic faces at 64 px for the whole session
    (``test_train.make_tiny_prepared``): the training, resume, study and reliability tests
    share it. Read-only by convention: a test that changes it copies it first (training may
    add its ``stats.json`` cache, which is what any run on it would write)."""
    from test_train import make_tiny_prepared

    return make_tiny_prepared(tmp_path_factory.mktemp("tiny"))


# --- reliability suite bookkeeping (see tests/reliability/harness.py) ---------------------------------

RELIABILITY_RESULTS = REPO_ROOT / ".pytest_cache" / "celebseg-reliability.json"
_reliability: dict[str, str] = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reliability(area, tried, outcome): a case of docs/RELIABILITY.md")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    # trylast: after `-m "not slow"` (make test) has deselected its items, so a case left out
    # of this run keeps its latest outcome in the results file instead of "not run".
    for item in items:
        if item.get_closest_marker("reliability") is not None:
            _reliability[item.nodeid] = "not run"


def pytest_runtest_logreport(report):
    if report.nodeid not in _reliability:
        # Under pytest-xdist the controller collects nothing: the reports carry the mark.
        if "reliability" not in report.keywords:
            return
        _reliability[report.nodeid] = "not run"
    if report.when == "call" or report.outcome != "passed":
        # A failed setup or teardown fails the case even when the call passed.
        if _reliability[report.nodeid] in ("not run", "passed"):
            _reliability[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _reliability or hasattr(config, "workerinput"):  # an xdist worker: the controller counts
        return
    counts = {k: sum(1 for v in _reliability.values() if v == k)
              for k in ("passed", "failed", "skipped", "not run")}
    terminalreporter.write_line(
        f"reliability: {len(_reliability)} cases tried, {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped")
    if not config.option.collectonly:
        import json

        # Merged, so that running one test file updates its cases and keeps the others'.
        try:
            merged = json.loads(RELIABILITY_RESULTS.read_text())
        except (OSError, ValueError):
            merged = {}
        merged.update(_reliability)
        RELIABILITY_RESULTS.parent.mkdir(exist_ok=True)
        RELIABILITY_RESULTS.write_text(json.dumps(merged, indent=1, sort_keys=True))
