"""Where the real data sets live (../shared/data beside the checkout, or $HVAE_SHARED_DATA)."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("HVAE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (set HVAE_SHARED_DATA)")
    return SHARED_DATA
