"""Checkpointed, rotation- and truncation-aware reading of complete new lines from a growing log file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

__all__ = ["Batch", "Checkpoint", "read_new_lines"]

HEAD_BYTES = 256
"""How many leading bytes fingerprint a file, to notice truncate-and-regrow and inode reuse."""


@dataclass(frozen=True)
class Checkpoint:
    """Where reading stopped: file identity (device, inode, head fingerprint) and the offset after the last line."""

    device: int = 0
    inode: int = 0
    offset: int = 0
    head: str = ""

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int | str] | None) -> Checkpoint:
        if not data:
            return cls()
        return cls(int(data["device"]), int(data["inode"]), int(data["offset"]), str(data.get("head", "")))

    @property
    def is_fresh(self) -> bool:
        return self.inode == 0


@dataclass(frozen=True)
class Batch:
    """Complete lines read in one go and the checkpoint to persist together with them."""

    lines: list[str]
    checkpoint: Checkpoint
    path: str
    start_offset: int
    event: str | None = None
    """``"rotated"``, ``"truncated"`` or ``"rotated-file"`` (lines from the old, renamed file) on the first batch
    after such an event, else None."""
    skipped_long_lines: int = field(default=0)
    unterminated_last_line: bool = False
    """The batch ends with a last line that has no newline (only when the caller said the file is complete)."""


def _fingerprint(handle: BinaryIO, upto: int) -> str:
    handle.seek(0)
    head = handle.read(min(upto, HEAD_BYTES))
    return hashlib.blake2b(head, digest_size=8).hexdigest() if head else ""


def _same_file(stat: os.stat_result, checkpoint: Checkpoint) -> bool:
    return stat.st_ino == checkpoint.inode and stat.st_dev == checkpoint.device


def _open_rotated(checkpoint: Checkpoint, candidates: Sequence[str]) -> tuple[BinaryIO, str] | None:
    """Open the candidate that is the checkpoint's file: same device+inode and, since inodes get reused, same head."""
    for candidate in candidates:
        try:
            handle = open(candidate, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except OSError:
            continue
        if _same_file(os.fstat(handle.fileno()), checkpoint) and (
            not checkpoint.head or _fingerprint(handle, checkpoint.offset) == checkpoint.head
        ):
            return handle, candidate
        handle.close()
    return None


def read_new_lines(
    path: str | os.PathLike[str],
    checkpoint: Checkpoint | None = None,
    *,
    max_bytes: int = 1 << 20,
    max_line_bytes: int = 1 << 20,
    rotated_paths: Sequence[str | os.PathLike[str]] | None = None,
    complete: bool = False,
) -> Iterator[Batch]:
    """Yield batches of complete lines appended to ``path`` since ``checkpoint`` (None: from the start).

    Contract:

    * It yields :class:`Batch` objects in file order.  ``batch.checkpoint`` is the position just after the batch's last
      line.  Store the batch's rows and its checkpoint in one transaction; on restart pass the last stored checkpoint
      back in.  Lines before that checkpoint are never yielded again, lines after it are yielded exactly once more.
    * Only complete lines (terminated by ``\\n``) are yielded, without the terminator (and a trailing ``\\r``).  A last
      line still being written stays in the file until its newline arrives; only with ``complete=True`` (the
      caller knows the file is finished, e.g. it stopped growing) is a final line without a newline yielded too,
      flagged by ``batch.unterminated_last_line``.
    * Rotation (the path now names another inode): if the old file is still reachable under one of ``rotated_paths``
      (default ``<path>.0``/``<path>.1``, matched by device+inode and head fingerprint, never by name) its remaining
      lines are yielded first; then the new file is read from offset 0.  If the old file is gone its unread tail is
      lost.
    * Truncation (copytruncate: same inode but smaller than the checkpoint, or its first bytes changed): restart at 0.
      Lines written between logrotate's copy and its truncate are lost; that is inherent to copytruncate.
    * Memory is bounded by ``max_bytes`` per batch.  A single line longer than ``max_line_bytes`` is skipped (counted
      in ``batch.skipped_long_lines``) once its end is seen.
    * Lines are decoded as UTF-8 with replacement characters; Squid itself %-encodes non-ASCII in URLs.
    """
    path = os.fspath(path)
    if checkpoint is None:
        checkpoint = Checkpoint()
    if rotated_paths is None:
        rotated_paths = (f"{path}.0", f"{path}.1")
    candidates = [os.fspath(p) for p in rotated_paths]

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed in the finally below, after a possible rotated file
    except FileNotFoundError:
        handle = None
    try:
        current = os.fstat(handle.fileno()) if handle else None
        event: str | None = None
        if not checkpoint.is_fresh and (
            current is None or not _same_file(current, checkpoint)
        ):
            rotated = _open_rotated(checkpoint, candidates)
            if rotated is not None:
                old_handle, old_path = rotated
                with old_handle:
                    old_stat = os.fstat(old_handle.fileno())
                    yield from _read_open(old_handle, old_path, old_stat, checkpoint, max_bytes, max_line_bytes,
                                          "rotated-file")
            checkpoint = Checkpoint()
            event = "rotated"
        if handle is None or current is None:
            return
        yield from _read_open(handle, path, current, checkpoint, max_bytes, max_line_bytes, event, complete)
    finally:
        if handle is not None:
            handle.close()


def _read_open(
    handle: BinaryIO,
    path: str,
    stat: os.stat_result,
    checkpoint: Checkpoint,
    max_bytes: int,
    max_line_bytes: int,
    event: str | None,
    complete: bool = False,
) -> Iterator[Batch]:
    size = stat.st_size
    offset = checkpoint.offset
    head = checkpoint.head
    if checkpoint.is_fresh or not _same_file(stat, checkpoint):
        offset, head = 0, ""
    elif size < offset or (head and _fingerprint(handle, offset) != head):
        offset, head = 0, ""
        event = event or "truncated"

    skipped = 0
    while offset < size:
        handle.seek(offset)
        chunk = handle.read(min(max_bytes, size - offset))
        if not chunk:
            break
        last_newline = chunk.rfind(b"\n")
        if last_newline == -1:
            # A line longer than max_bytes, or a last line still being written (or, in a complete file, its last).
            end = _end_of_long_line(handle, offset + len(chunk), size, max_bytes)
            if end is None:
                if not complete:
                    break
                end = size
            if end - offset > max_line_bytes:
                skipped += 1
                offset = end
                continue
            handle.seek(offset)
            chunk = handle.read(end - offset)
            last_newline = len(chunk) - 1
        data = chunk[: last_newline + 1]
        start_offset = offset
        offset += len(data)
        if start_offset < HEAD_BYTES or not head:
            # The fingerprint must always cover min(offset, HEAD_BYTES) bytes to be comparable later.
            head = _fingerprint(handle, offset)
        lines = data.decode("utf-8", "replace").split("\n")
        unterminated = not data.endswith(b"\n")
        if not unterminated:
            lines.pop()  # empty string after the final newline
        if b"\r" in data:
            lines = [line.removesuffix("\r") for line in lines]
        yield Batch(lines, Checkpoint(stat.st_dev, stat.st_ino, offset, head), path, start_offset, event, skipped,
                    unterminated)
        event = None
        skipped = 0
    if skipped or (event and event != "rotated-file"):
        # Nothing readable followed the event, but the caller still has to persist the new position.
        yield Batch([], Checkpoint(stat.st_dev, stat.st_ino, offset, head), path, offset, event, skipped)


def _end_of_long_line(handle: BinaryIO, position: int, size: int, step: int) -> int | None:
    """Offset just past the next newline at or after ``position``, scanning without keeping data; None at EOF."""
    while position < size:
        handle.seek(position)
        block = handle.read(min(step, size - position))
        if not block:
            return None
        found = block.find(b"\n")
        if found != -1:
            return position + found + 1
        position += len(block)
    return None
