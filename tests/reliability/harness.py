"""Helpers of the reliability suite (``tests/reliability/test_reliability_*.py``), not a test module.

Every reliability test carries ``@pytest.mark.reliability(area, tried, outcome)``: ``tried``
says what bad or hostile input was given, ``outcome`` what the test asserts happened. The
marks are the source of ``docs/RELIABILITY.md`` (``scripts/make_reliability_doc.py``), and
``conftest.py`` counts them at the end of every run (``reliability: N tried, N passed``).

Example::

    @pytest.mark.reliability("cli", "an unknown option", "one-line error, exit 2")
    def test_unknown_option():
        assert_user_error(run_cli(["prepare", "--bogus"]), "--bogus")
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
AREAS = ("data", "archives", "runs", "cli")


@dataclass
class Result:
    """What a CLI run left behind: exit status and the two streams."""

    code: int
    out: str
    err: str

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def run_cli(argv: list[str]) -> Result:
    """Run ``celebseg ARGV`` in this process, capturing stdout/stderr.

    An exception that escapes ``cli.main`` fails the calling test, exactly as it would
    have printed a traceback to a user.
    """
    from celebseg_utils import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own exits
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return Result(int(code), out.getvalue(), err.getvalue())


def run_cli_subprocess(argv: list[str], timeout: float = 600, env: dict | None = None,
                       cwd: Path | None = None) -> Result:
    """Run ``python -m celebseg_utils ARGV`` as a user would, in a child process."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "celebseg_utils", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=cwd or REPO_ROOT)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def error_line(result: Result) -> str:
    """The last non-empty stderr line (progress bars may precede it)."""
    lines = [ln for ln in result.err.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def assert_user_error(result: Result, *fragments: str, code: int = 2) -> str:
    """Assert a one-line ``error: ...`` naming ``fragments``, the exit status, no traceback."""
    assert "Traceback" not in result.err, str(result)
    assert result.code == code, str(result)
    line = error_line(result)
    assert line.startswith("error: "), str(result)
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    return line


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (a before/after witness)."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def partial_files(root: Path) -> list[str]:
    """Leftover temporary files of interrupted atomic writes (``fileio`` names them ``.*.tmp*``)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.is_file() and p.name.startswith(".") and ".tmp" in p.name)
