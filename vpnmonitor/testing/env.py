"""A pytest plugin loaded before Django: the test environment's settings (DEBUG on, local key dir)."""

import os
import tempfile

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("VPNMONITOR_VAR_DIR", os.path.join(tempfile.gettempdir(), f"vpnmonitor-test-{os.getuid()}"))
