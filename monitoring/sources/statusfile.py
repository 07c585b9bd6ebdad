"""Read an OpenVPN status file (any status-version) into a StatusSnapshot, refusing half-written files."""

from __future__ import annotations

import os
import time
from datetime import tzinfo

from monitoring.sources.status import IncompleteStatus, StatusParseError, StatusSnapshot, parse_status

__all__ = ["MAX_STATUS_FILE_BYTES", "read_status_file"]

# A status line is ~200 bytes; this allows tens of thousands of clients yet bounds memory on a bad path.
MAX_STATUS_FILE_BYTES = 64 * 1024 * 1024


def read_status_file(
    path: str | os.PathLike[str], *, tz: tzinfo | None = None, attempts: int = 3, retry_delay: float = 0.05
) -> StatusSnapshot:
    """Parse the status file at ``path``; raise IncompleteStatus while OpenVPN is rewriting it.

    OpenVPN rewrites the file in place line by line and truncates last, so a reader can catch a mix of
    new head and old tail that still ends in END. The file is therefore read whole, twice, and only parsed
    when both reads agree. OSError (e.g. a missing file) propagates. Bytes that are not UTF-8 (e.g. in a
    common name) are replaced rather than rejected.
    """
    for attempt in range(attempts):
        if attempt:
            time.sleep(retry_delay)
        raw = _read(path)
        if _read(path) == raw:
            return _parse(path, raw, tz)
    raise IncompleteStatus(f"{path}: changed during each of {attempts} reads (being rewritten)")


def _read(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as status_file:
        raw = status_file.read(MAX_STATUS_FILE_BYTES + 1)
    if len(raw) > MAX_STATUS_FILE_BYTES:
        raise StatusParseError(f"{path}: larger than {MAX_STATUS_FILE_BYTES} bytes, refusing to parse")
    return raw


def _parse(path: str | os.PathLike[str], raw: bytes, tz: tzinfo | None) -> StatusSnapshot:
    try:
        return parse_status(raw.decode("utf-8", errors="replace"), tz=tz)
    except IncompleteStatus as exc:
        raise IncompleteStatus(f"{path}: {exc}") from exc
    except StatusParseError as exc:
        raise StatusParseError(f"{path}: {exc}") from exc
