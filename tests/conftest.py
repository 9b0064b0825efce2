"""Shared fixtures. Test modules mirror the package modules they test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "celebamask_hq_samples"


@pytest.fixture(scope="session")
def real_samples_dir() -> Path:
    """The two real CelebAMask-HQ samples (N.jpg photo, N.png fused label map)."""
    if not (REAL_SAMPLES / "0.png").exists():
        pytest.skip(f"real samples not found at {REAL_SAMPLES} (they live in ../shared/data)")
    return REAL_SAMPLES
