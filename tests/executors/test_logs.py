"""Reading a job's log by offset across its rotated files (``executors/logs.py``)."""

from __future__ import annotations

import threading
from pathlib import Path

from axcenter.executors import logs
from axcenter.executors.logs import LogChunk


def rotated_log(tmp_path: Path, pieces: list[bytes], kept: int) -> tuple[Path, bytes]:
    """A log written as ``pieces``, each but the last rotated, the oldest beyond ``kept``
    removed, as the supervisor leaves it; returns the live path and the whole output."""
    path = tmp_path / "job_1.log"
    start = 0
    for piece in pieces[:-1]:
        path.with_name(f"job_1.log.{start}").write_bytes(piece)
        start += len(piece)
    path.write_bytes(pieces[-1])
    rotated = sorted(tmp_path.glob("job_1.log.*"), key=lambda p: int(p.suffix[1:]))
    for old in rotated[: max(len(rotated) - kept, 0)]:
        old.unlink()
    return path, b"".join(pieces)


def test_offsets_run_across_the_rotated_files_and_the_live_one(tmp_path: Path) -> None:
    path, whole = rotated_log(tmp_path, [b"aaaa", b"bbbbb", b"cc"], kept=5)
    for offset in range(len(whole) + 2):
        for limit in (1, 3, 100):
            assert logs.read(path, offset, limit) == LogChunk(
                offset, whole[offset : offset + limit]
            ), (offset, limit)


def test_bytes_rotated_away_are_skipped_and_the_chunk_says_where_it_starts(
    tmp_path: Path,
) -> None:
    path, whole = rotated_log(tmp_path, [b"0123", b"45678", b"9ab", b"cd"], kept=2)
    assert not path.with_name("job_1.log.0").exists()
    assert logs.read(path, 0, 100) == LogChunk(4, whole[4:])
    assert logs.read(path, 2, 3) == LogChunk(4, b"456")
    assert logs.read(path, 10, 100) == LogChunk(10, b"ab" + b"cd")


def test_a_job_without_a_log_has_none(tmp_path: Path) -> None:
    assert logs.read(tmp_path / "job_1.log", 0, 10) is None
    assert logs.read(tmp_path / "missing" / "job_1.log", 0, 10) is None


def test_only_rotated_files_left_are_still_read(tmp_path: Path) -> None:
    path, whole = rotated_log(tmp_path, [b"abc", b"de", b""], kept=5)
    path.unlink()  # rotated, and the new live file not made yet
    assert logs.read(path, 1, 100) == LogChunk(1, whole[1:])


def test_a_reader_sees_a_consistent_stream_while_the_log_rotates(tmp_path: Path) -> None:
    """A writer rotating as the supervisor does (rename, then a new file) while readers
    read: every chunk is exactly the bytes of the stream at the offset it names."""
    path = tmp_path / "job_1.log"
    line = bytes(range(48, 58)) * 10  # 100 bytes, position-dependent
    stream = line * 400
    done = threading.Event()

    def write() -> None:
        start, size = 0, 0
        f = path.open("ab")
        for i in range(0, len(stream), 37):
            piece = stream[i : i + 37]
            f.write(piece)
            f.flush()
            size += len(piece)
            if size >= 1000:
                f.close()
                path.rename(path.with_name(f"job_1.log.{start}"))
                start += size
                size = 0
                f = path.open("ab")
        f.close()
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    checked = 0
    while not done.is_set() or checked == 0:
        for offset in (0, 555, 12_345, 30_000):
            chunk = logs.read(path, offset, 700)
            if chunk is None:
                continue
            assert chunk.start >= offset
            assert chunk.data == stream[chunk.start : chunk.start + len(chunk.data)]
            checked += 1
    writer.join()
    assert logs.read(path, 39_950, 100) == LogChunk(39_950, stream[39_950:])
