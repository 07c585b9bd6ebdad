"""Tests for proxylogs.ingest.tail: checkpoints, partial lines, rotation, truncation, no duplicates."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from proxylogs.ingest.tail import HEAD_BYTES, Batch, Checkpoint, read_new_lines


class Reader:
    """Simulates the ingesting caller: stores lines and the checkpoint together after every batch."""

    def __init__(self, path: Path, **options: object) -> None:
        self.path = path
        self.options = options
        self.checkpoint: Checkpoint | None = None
        self.stored: list[str] = []
        self.batches: list[Batch] = []

    def poll(self) -> list[str]:
        new: list[str] = []
        for batch in read_new_lines(self.path, self.checkpoint, **self.options):
            new.extend(batch.lines)
            self.batches.append(batch)
            # Round-trip through JSON, as a caller persisting it in a database would.
            self.checkpoint = Checkpoint.from_dict(json.loads(json.dumps(batch.checkpoint.to_dict())))
        self.stored.extend(new)
        return new


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def lines_text(start: int, stop: int) -> str:
    return "".join(f"line {i}\n" for i in range(start, stop))


def expected(start: int, stop: int) -> list[str]:
    return [f"line {i}" for i in range(start, stop)]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "access.log"


def test_missing_file_yields_nothing(log: Path) -> None:
    assert list(read_new_lines(log)) == []
    assert list(read_new_lines(log, Checkpoint())) == []


def test_appends_across_calls(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 3))
    assert reader.poll() == expected(0, 3)
    assert reader.poll() == []
    append(log, lines_text(3, 5))
    assert reader.poll() == expected(3, 5)
    assert reader.checkpoint is not None
    assert reader.checkpoint.offset == log.stat().st_size
    assert reader.checkpoint.inode == log.stat().st_ino


def test_half_written_line_waits_for_its_newline(log: Path) -> None:
    reader = Reader(log)
    append(log, "line 0\nline 1\nline 2 is half")
    assert reader.poll() == ["line 0", "line 1"]
    assert reader.poll() == []
    append(log, " written")
    assert reader.poll() == []
    append(log, " now\nline 3\n")
    assert reader.poll() == ["line 2 is half written now", "line 3"]
    assert reader.stored == ["line 0", "line 1", "line 2 is half written now", "line 3"]


def test_crlf_and_utf8_and_invalid_bytes(log: Path) -> None:
    log.write_bytes("caf\u00e9\r\n".encode() + b"bad \xff byte\n")
    assert Reader(log).poll() == ["caf\u00e9", "bad \ufffd byte"]


def test_small_batches_are_bounded_and_contiguous(log: Path) -> None:
    append(log, lines_text(0, 500))
    batches = list(read_new_lines(log, max_bytes=100))
    assert len(batches) > 40
    assert all(len("\n".join(b.lines)) + 1 <= 100 for b in batches)
    assert [line for b in batches for line in b.lines] == expected(0, 500)
    for previous, batch in itertools.pairwise(batches):
        assert batch.start_offset == previous.checkpoint.offset


def test_resume_from_any_batch_checkpoint_never_duplicates(log: Path) -> None:
    append(log, lines_text(0, 200))
    batches = list(read_new_lines(log, max_bytes=64))
    for index, batch in enumerate(batches):
        # A crash after storing batch `index`: everything after it comes back exactly once.
        rest = [line for b in read_new_lines(log, batch.checkpoint, max_bytes=64) for line in b.lines]
        assert [line for b in batches[: index + 1] for line in b.lines] + rest == expected(0, 200)


def test_line_longer_than_chunk_is_read_whole(log: Path) -> None:
    long_line = "x" * 5000
    append(log, f"a\n{long_line}\nb\n")
    assert [line for b in read_new_lines(log, max_bytes=128) for line in b.lines] == ["a", long_line, "b"]


def test_line_longer_than_limit_is_skipped_and_counted(log: Path) -> None:
    append(log, "a\n" + "y" * 10_000 + "\nb\n")
    batches = list(read_new_lines(log, max_bytes=256, max_line_bytes=1000))
    assert [line for b in batches for line in b.lines] == ["a", "b"]
    assert sum(b.skipped_long_lines for b in batches) == 1
    assert batches[-1].checkpoint.offset == log.stat().st_size


def test_unfinished_overlong_line_is_left_in_place(log: Path) -> None:
    append(log, "a\n" + "z" * 3000)
    reader = Reader(log, max_bytes=256, max_line_bytes=1000)
    assert reader.poll() == ["a"]
    assert reader.checkpoint is not None and reader.checkpoint.offset == 2
    append(log, "\nb\n")
    assert reader.poll() == ["b"]


def test_rotation_by_rename_finishes_old_file_then_reads_new(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 3))
    assert reader.poll() == expected(0, 3)
    append(log, lines_text(3, 5))  # written before rotation, not yet read
    os.rename(log, log.with_name("access.log.1"))
    append(log, lines_text(5, 8))
    assert reader.poll() == expected(3, 8)
    assert [b.event for b in reader.batches[-2:]] == ["rotated-file", "rotated"]
    assert reader.checkpoint is not None and reader.checkpoint.inode == log.stat().st_ino
    append(log, lines_text(8, 9))
    assert reader.poll() == expected(8, 9)
    assert reader.stored == expected(0, 9)


def test_rotation_with_old_file_gone_starts_new_file_at_zero(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 3))
    reader.poll()
    append(log, lines_text(3, 4))  # lost with the old file
    log.unlink()
    append(log, lines_text(10, 12))
    assert reader.poll() == expected(10, 12)
    # Filesystems reuse a freed inode at once, so this may look like a truncation of the same file; either way
    # the new file is read from its start.
    assert reader.batches[-1].event in ("rotated", "truncated")


def test_rotation_to_empty_new_file_still_moves_checkpoint(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 2))
    reader.poll()
    os.rename(log, log.with_name("access.log.0"))
    log.touch()
    assert reader.poll() == []
    assert reader.checkpoint is not None
    assert (reader.checkpoint.inode, reader.checkpoint.offset) == (log.stat().st_ino, 0)
    append(log, lines_text(2, 3))
    assert reader.poll() == expected(2, 3)
    assert reader.stored == expected(0, 3)


def test_rotated_file_found_only_by_inode_not_by_name(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 2))
    reader.poll()
    log.unlink()
    # An unrelated file under the rotated name must not be read as the old log.
    log.with_name("access.log.1").write_text("unrelated\n")
    append(log, lines_text(2, 3))
    assert reader.poll() == expected(2, 3)


def test_custom_rotated_paths(log: Path, tmp_path: Path) -> None:
    reader = Reader(log, rotated_paths=[tmp_path / "old" / "access.log-20261122"])
    append(log, lines_text(0, 1))
    reader.poll()
    append(log, lines_text(1, 2))
    (tmp_path / "old").mkdir()
    os.rename(log, tmp_path / "old" / "access.log-20261122")
    append(log, lines_text(2, 3))
    assert reader.poll() == expected(1, 3)


def test_path_missing_mid_rotation_reads_old_file(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 1))
    reader.poll()
    append(log, lines_text(1, 2))
    os.rename(log, log.with_name("access.log.0"))
    assert reader.poll() == expected(1, 2)  # new file not created yet
    append(log, lines_text(2, 3))
    assert reader.poll() == expected(2, 3)
    assert reader.stored == expected(0, 3)


def test_copytruncate_restarts_at_zero(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 5))
    reader.poll()
    inode = log.stat().st_ino
    log.write_text("")  # truncate in place, as logrotate's copytruncate does
    append(log, lines_text(5, 7))
    assert log.stat().st_ino == inode
    assert reader.poll() == expected(5, 7)
    assert reader.batches[-1].event == "truncated"
    assert reader.stored == expected(0, 7)


def test_truncate_to_empty_is_noticed_before_new_lines(log: Path) -> None:
    reader = Reader(log)
    append(log, lines_text(0, 5))
    reader.poll()
    log.write_text("")
    assert reader.poll() == []
    assert reader.checkpoint is not None and reader.checkpoint.offset == 0
    append(log, lines_text(5, 6))
    assert reader.poll() == expected(5, 6)


def test_truncate_and_regrow_past_checkpoint_is_caught_by_fingerprint(log: Path) -> None:
    reader = Reader(log)
    append(log, "".join(f"first generation {i}\n" for i in range(3)))
    reader.poll()
    log.write_text("")
    append(log, lines_text(0, 40))  # now larger than the old offset: size alone cannot tell
    assert log.stat().st_size > reader.checkpoint.offset  # type: ignore[union-attr]
    assert reader.poll() == expected(0, 40)
    assert reader.batches[-1].event == "truncated"


def test_fingerprint_stays_comparable_as_the_file_grows_past_head_bytes(log: Path) -> None:
    reader = Reader(log)
    for start in range(0, 300, 3):
        append(log, lines_text(start, start + 3))
        assert reader.poll() == expected(start, start + 3)
    assert reader.checkpoint is not None and reader.checkpoint.offset > HEAD_BYTES
    assert all(b.event is None for b in reader.batches)
    assert reader.stored == expected(0, 300)


def test_no_duplicates_through_everything(log: Path) -> None:
    reader = Reader(log, max_bytes=50)
    append(log, lines_text(0, 10))
    reader.poll()
    append(log, lines_text(10, 12) + "line 1")
    reader.poll()
    append(log, "2\n")
    os.rename(log, log.with_name("access.log.1"))
    append(log, lines_text(13, 20))
    reader.poll()
    log.write_text("")
    append(log, lines_text(20, 25))
    reader.poll()
    reader.poll()
    assert reader.stored == expected(0, 25)


def test_checkpoint_roundtrip() -> None:
    checkpoint = Checkpoint(device=3, inode=42, offset=1000, head="abcd")
    assert Checkpoint.from_dict(checkpoint.to_dict()) == checkpoint
    assert Checkpoint.from_dict(None) == Checkpoint()
    assert Checkpoint().is_fresh and not checkpoint.is_fresh
