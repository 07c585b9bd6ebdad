"""Where the tests find real captures and files from other projects (shared/fixtures/real beside the checkout)."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def real_fixture(relative: str) -> Path:
    """Path of a real capture or file; skips the test when the shared fixtures are not laid out here.

    VPNMONITOR_SHARED_DIR overrides where shared/ is; by default it lies beside the checkout. In CI
    (VPNMONITOR_REQUIRE_INTEGRATION=1) a missing file fails the test instead of skipping it.
    """
    shared = Path(os.environ.get("VPNMONITOR_SHARED_DIR") or REPO_ROOT.parent / "shared")
    path = shared / "fixtures" / "real" / relative
    if not path.exists():
        message = f"real fixture {relative} not found under {shared}"
        if os.environ.get("VPNMONITOR_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path
