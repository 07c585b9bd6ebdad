"""Read an OpenVPN status file (any status-version) into a StatusSnapshot, refusing half-written files."""

from __future__ import annotations

import os
from datetime import tzinfo

from monitoring.sources.status import IncompleteStatus, StatusParseError, StatusSnapshot, parse_status

__all__ = ["MAX_STATUS_FILE_BYTES", "read_status_file"]

# A status line is ~200 bytes; this allows tens of thousands of clients yet bounds memory on a bad path.
MAX_STATUS_FILE_BYTES = 64 * 1024 * 1024


def read_status_file(path: str | os.PathLike[str], *, tz: tzinfo | None = None) -> StatusSnapshot:
    """Parse the status file at ``path``; raise IncompleteStatus while OpenVPN is rewriting it.

    The file is read in one go because OpenVPN rewrites it in place; OSError (e.g. missing file) propagates.
    Bytes that are not UTF-8 (e.g. in a common name) are replaced rather than rejected.
    """
    with open(path, "rb") as status_file:
        raw = status_file.read(MAX_STATUS_FILE_BYTES + 1)
    if len(raw) > MAX_STATUS_FILE_BYTES:
        raise StatusParseError(f"{path}: larger than {MAX_STATUS_FILE_BYTES} bytes, refusing to parse")
    try:
        return parse_status(raw.decode("utf-8", errors="replace"), tz=tz)
    except IncompleteStatus as exc:
        raise IncompleteStatus(f"{path}: {exc}") from exc
    except StatusParseError as exc:
        raise StatusParseError(f"{path}: {exc}") from exc
