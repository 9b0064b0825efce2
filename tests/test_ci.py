"""`.ci/run`'s phase timer (.ci/phases.sh): each phase's time against its recorded time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ci(script: str, times: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"source .ci/phases.sh; {script}"], cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "CI_PHASE_TIMES": str(times)},
                          capture_output=True, text=True, timeout=60)


def test_a_phase_within_twice_its_time_passes_and_keeps_its_status(tmp_path):
    times = tmp_path / "times.tsv"
    times.write_text("# phase\tseconds\nquick\t30\tnote\n")
    done = _ci("phase quick true; a=$?; phase quick false; b=$?; phase_summary; "
               "echo \"rc $a $b $?\"", times)
    assert done.stdout.splitlines()[-1] == "rc 0 1 0", done.stdout + done.stderr
    assert "ci: phase quick took 0 s (recorded 30 s, limit 1 min 00 s)" in done.stderr
    assert "error" not in done.stderr
    assert "ci: total 0 s" in done.stdout


def test_a_phase_over_twice_its_time_fails_with_a_line_naming_it(tmp_path):
    times = tmp_path / "times.tsv"
    times.write_text("slow\t0\n")
    done = _ci("phase slow sleep 1.2; a=$?; phase unknown true; phase_summary; echo \"rc $a $?\"",
               times)
    assert done.stdout.splitlines()[-1] == "rc 0 1", done.stdout + done.stderr
    assert (f"error: phase slow took 1 s, more than twice its recorded 0 s ({times})"
            in done.stderr)
    assert f"ci: phase unknown took 0 s (no recorded time in {times})" in done.stderr
    assert "error: over twice the recorded time: slow (.ci/run fails)" in done.stderr


def test_every_phase_of_ci_run_has_a_recorded_time():
    run = (REPO / ".ci" / "run").read_text()
    phases = [line.split()[1] for line in run.splitlines() if line.startswith("phase ")]
    assert phases == ["setup", "browser-setup", "test-all", "runtime-check"]
    recorded = {line.split("\t")[0]: int(line.split("\t")[1].lstrip("~"))
                for line in (REPO / ".ci" / "phase-times.tsv").read_text().splitlines()
                if line and not line.startswith("#")}
    assert set(recorded) == set(phases) and all(s > 0 for s in recorded.values())
    # installs only warn: their time is the registry's and the cache's
    warn_only = {line.split("\t")[0] for line in (REPO / ".ci" / "phase-times.tsv").read_text().splitlines()
                 if line and not line.startswith("#") and line.split("\t")[1].startswith("~")}
    assert warn_only == {"setup", "browser-setup"}


@pytest.mark.slow
def test_an_install_phase_over_its_time_warns_and_a_test_phase_fails(tmp_path):
    import subprocess

    times = tmp_path / "t.tsv"
    times.write_text("install\t~1\tx\ntests\t1\ty\n")
    script = (f"CI_PHASE_TIMES={times}; source {REPO / '.ci' / 'phases.sh'}; "
              "phase install sleep 2.6; phase tests sleep 2.6; phase_summary")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "warning: phase install took more than twice" in done.stderr
    assert "error: over twice the recorded time: tests (.ci/run fails)" in done.stderr
