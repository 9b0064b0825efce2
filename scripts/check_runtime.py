"""Check the package where its users run it: a Colab or Kaggle runtime rebuilt from its manifest.

    python scripts/check_runtime.py runtimes/colab-2026-08.txt
    python scripts/check_runtime.py runtimes/kaggle-2026-05.txt --python /usr/bin/python3.12

Steps, each reported on one line of the log:

1. find an interpreter of the manifest's Python (``# python: 3.13``): ``--python``, then
   ``$CELEBSEG_PYTHON_3_13``, ``python3.13`` on the PATH, then pyenv's versions. None found:
   the check prints ``SKIPPED`` with the reason and exits 3 (``.ci/run`` reports it, and does
   not count it as a pass);
2. build a fresh virtual environment with the manifest's pins (the runtime as shipped);
3. run notebook 01's install cell itself, as the runtime would (``COLAB_RELEASE_TAG`` or
   ``KAGGLE_KERNEL_RUN_TYPE`` set), with ``CELEBSEG_SPEC`` naming this checkout instead of
   GitHub;
4. compare ``pip freeze`` before and after: any preinstalled package changed or removed
   fails the check; the packages added are listed;
5. install the test tools under the runtime's pins as constraints, then run, in that
   environment, the seven notebooks with ``SMOKE=True`` (tests/test_notebooks.py) and the
   model, loss and widget tests;
6. Colab only: play the journey's ``01 -> 02 -> 04`` leg there (tests/test_journey.py with
   ``CELEBSEG_SIMULATED_RUNTIME=colab``): each notebook on a fresh runtime that shares only
   a folder standing for Google Drive, with ``COLAB_RELEASE_TAG`` set, then 04 again, which
   must resume from Drive. Its timings are logged.

Exit status: 0 pass, 1 fail, 3 skipped (no interpreter).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: What runs inside the runtime after the install check (paths relative to the checkout).
#: tests/models/test_metrics_distributed.py stays in the main suite: it checks tf.distribute
#: arithmetic across several worker processes, which no runtime's pins change.
RUNTIME_TESTS = ["tests/test_notebooks.py", "tests/models/test_deeplab.py",
                 "tests/models/test_losses.py", "tests/models/test_metrics.py",
                 "tests/interface/test_widgets.py", "tests/test_tf_startup.py"]
#: Test tools the runtimes do not ship; installed after the freeze, under its pins.
TEST_TOOLS = ["pytest>=8", "papermill>=2.6"]
#: The environment variable each runtime sets, which the install cell looks for.
RUNTIME_MARKERS = {"colab": ("COLAB_RELEASE_TAG", "runtime-check"),
                   "kaggle": ("KAGGLE_KERNEL_RUN_TYPE", "Batch")}


def read_manifest(path: Path) -> tuple[str, dict[str, str]]:
    """``(python "3.13", {normalised name: version})`` from a manifest file."""
    python, pins = None, {}
    for line in path.read_text().splitlines():
        found = re.match(r"#\s*python:\s*(\d+\.\d+)", line)
        if found:
            python = found.group(1)
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[normalise(name)] = version.strip()
    if python is None:
        raise SystemExit(f"{path}: no '# python: X.Y' line")
    return python, pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_python(version: str, explicit: str | None) -> tuple[str | None, str]:
    """An interpreter of ``version`` (e.g. "3.13"), and where it came from or why none."""
    candidates = []
    if explicit:
        candidates.append((explicit, "--python"))
    variable = f"CELEBSEG_PYTHON_{version.replace('.', '_')}"
    if os.environ.get(variable):
        candidates.append((os.environ[variable], f"${variable}"))
    if shutil.which(f"python{version}"):
        candidates.append((shutil.which(f"python{version}"), "PATH"))
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for exe in sorted(glob.glob(f"{root}/versions/{version}.*/bin/python"), reverse=True):
        candidates.append((exe, "pyenv"))
    for exe, source in candidates:
        try:
            got = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        except OSError:
            continue
        if got == version:
            return exe, source
    return None, (f"no Python {version} interpreter: tried --python, ${variable}, "
                  f"python{version} on the PATH and {root}/versions/{version}.*")


def freeze(python: Path) -> dict[str, str]:
    """``{normalised name: version or 'url'}`` of an environment."""
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True,
                         text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
        elif " @ " in line:
            name, version = line.split(" @ ", 1)
        else:
            continue
        found[normalise(name)] = version.strip()
    return found


def compare(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """What an install did to an environment: packages changed, removed and added."""
    return {
        "changed": sorted(f"{n} {before[n]} -> {after[n]}" for n in before
                          if n in after and after[n] != before[n]),
        "removed": sorted(n for n in before if n not in after),
        "added": sorted(f"{n} {after[n]}" for n in after if n not in before),
    }


def install_cell_source(notebook: Path) -> str:
    """The code of the notebook's install cell (the one reading ``CELEBSEG_SPEC``)."""
    cells = json.loads(notebook.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return next(s for s in sources if "CELEBSEG_SPEC" in s and "pip" in s)


def _pip_env() -> dict:
    # pip's quiet install output is still a screen of index warnings on some machines.
    return {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONWARNINGS": "ignore"}


def _dump(text: str, log) -> None:
    """A command's output, each line tagged with its runtime (runtimes may run at once)."""
    for line in text.splitlines():
        log(f"| {line}")


def run(cmd, log, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        log(f"command failed ({done.returncode}): {' '.join(map(str, cmd))}")
        _dump(done.stdout[-4000:] + done.stderr[-4000:], log)
    return done


def check(manifest: Path, python: str | None, work: Path, run_tests: bool) -> int:
    name = manifest.stem
    runtime = name.split("-")[0]

    def log(message: str) -> None:
        print(f"[{name}] {message}", flush=True)

    version, pins = read_manifest(manifest)
    exe, source = find_python(version, python)
    if exe is None:
        log(f"SKIPPED: {source}")
        return 3
    log(f"Python {version}: {exe} (from {source})")

    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    venv_python = venv / "bin" / "python"
    start = time.perf_counter()
    if run([exe, "-m", "venv", venv], log).returncode != 0:
        return 1
    # --no-compile: byte-compiling TensorFlow's thousands of modules is most of an install's
    # time, and only the modules the tests import need it (Python compiles those on import).
    if run([venv_python, "-m", "pip", "install", "-q", "--no-compile", "-r", manifest], log,
           env=_pip_env()).returncode != 0:
        return 1
    before = freeze(venv_python)
    wrong = [f"{n}=={v} (got {before.get(n)})" for n, v in pins.items() if before.get(n) != v]
    if wrong:
        log("the manifest did not install as pinned: " + ", ".join(wrong))
        return 1
    log(f"runtime built from the manifest: {len(before)} packages, "
        f"{len(pins)} pinned ({time.perf_counter() - start:.0f} s)")

    # Notebook cell 1, run as the runtime runs it, installing this checkout.
    start = time.perf_counter()
    variable, value = RUNTIME_MARKERS[runtime]
    spec = f"celebseg[download] @ {REPO_ROOT.as_uri()}"
    cell = install_cell_source(sorted((REPO_ROOT / "notebooks").glob("01_*.ipynb"))[0])
    env = {**_pip_env(), variable: value, "CELEBSEG_SPEC": spec}
    if run([venv_python, "-c", cell], log, env=env, cwd=work).returncode != 0:
        return 1
    after = freeze(venv_python)
    diff = compare(before, after)
    log(f"install cell ran ({time.perf_counter() - start:.0f} s): added "
        + (", ".join(a.split(" file:")[0] for a in diff["added"]) or "nothing"))
    log(f"preinstalled packages changed: {len(diff['changed']) + len(diff['removed'])}")
    for line in diff["changed"] + [f"{r} removed" for r in diff["removed"]]:
        log(f"  {line}")
    if diff["changed"] or diff["removed"]:
        log("FAIL: installing celebseg changed the runtime")
        return 1
    if not run_tests:
        log("PASS (install only)")
        return 0

    constraints = work / "runtime-constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in before.items()
                                   if re.fullmatch(r"[\w.+!-]+", v)))
    if run([venv_python, "-m", "pip", "install", "-q", "-c", constraints, *TEST_TOOLS], log,
           env=_pip_env()).returncode != 0:
        log("FAIL: the test tools do not install under the runtime's pins")
        return 1
    moved = compare(after, freeze(venv_python))
    if moved["changed"] or moved["removed"]:
        log("FAIL: the test tools changed the runtime: " + ", ".join(moved["changed"]))
        return 1
    if run([venv_python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
           log).returncode != 0:
        return 1

    start = time.perf_counter()
    times = work / "notebook-times.tsv"
    times.unlink(missing_ok=True)
    test_env = {k: v for k, v in os.environ.items()
                if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH", "VIRTUAL_ENV")}
    test_env.update(CELEBSEG_NOTEBOOK_TIMES=str(times), PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run([str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *RUNTIME_TESTS], cwd=REPO_ROOT, env=test_env, capture_output=True,
                          text=True)
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    ran = times.read_text().splitlines() if times.exists() else []
    log(f"notebooks executed with SMOKE=True: {len(ran)} of 7 ("
        + ", ".join(line.replace("\t", " ") + " s" for line in ran) + ")")
    log(f"tests in the runtime ({time.perf_counter() - start:.0f} s): {summary}")
    if done.returncode != 0 or len(ran) != 7:
        _dump(done.stdout[-6000:] + done.stderr[-3000:], log)
        log("FAIL")
        return 1
    if runtime == "colab" and not journey(venv_python, test_env, work, log):
        log("FAIL")
        return 1
    log("PASS")
    return 0


def journey(venv_python: Path, test_env: dict, work: Path, log) -> bool:
    """The 01 -> 02 -> 04 leg of the Colab journey, in the runtime (tests/test_journey.py)."""
    start = time.perf_counter()
    times = work / "journey-times.txt"
    times.unlink(missing_ok=True)
    env = {**test_env, "CELEBSEG_SIMULATED_RUNTIME": "colab", "CELEBSEG_JOURNEY_TIMES": str(times)}
    done = subprocess.run([str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_journey.py"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    played = times.read_text().strip() if times.exists() else "no timings"
    log(f"{played}; tests ({time.perf_counter() - start:.0f} s): {summary}")
    if done.returncode != 0:
        _dump(done.stdout[-6000:] + done.stderr[-3000:], log)
    return done.returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, nargs="+", help="runtimes/NAME.txt")
    parser.add_argument("--python", help="interpreter to build the runtime from")
    parser.add_argument("--workdir", type=Path, help="where the environment is built "
                        "(default: a new temporary folder; rebuilt from scratch each time)")
    parser.add_argument("--install-only", action="store_true",
                        help="stop after the install check (no notebooks, no tests)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runtimes checked at once (default 1). Each log line names its "
                             "runtime. Smoke runs are mostly single-threaded graph tracing, "
                             "so two runtimes on two cores take less than twice one (docs/runtimes.md)")
    args = parser.parse_args(argv)

    def one(manifest: Path) -> int:
        work = (args.workdir / manifest.stem if args.workdir
                else Path(tempfile.mkdtemp(prefix=f"celebseg-{manifest.stem}-")))
        try:
            return check(manifest, args.python, work, not args.install_only)
        finally:
            if not args.workdir:  # a runtime is a few GB: keep it only where asked to
                shutil.rmtree(work, ignore_errors=True)

    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = list(pool.map(one, args.manifest))
    return 1 if 1 in codes else (3 if 3 in codes else 0)


if __name__ == "__main__":
    sys.exit(main())
