"""RotatingFile: size-bounded append-only line files (used by the alert file sink and dead letters)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import REPO_ROOT
from monitor.rotating_file import RotatingFile, rotated_path


def files(path: Path) -> list[Path]:
    """``path`` and its rotated siblings, newest first."""
    return sorted(path.parent.glob(path.name + "*"), key=lambda p: (len(p.name), p.name))


def test_file_rotates_before_a_line_would_pass_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    f = RotatingFile(path, max_bytes=10)
    f.append(b"aaaa\n")
    f.append(b"bbbb\n")  # exactly 10 bytes: still fits
    f.append(b"cccc\n")
    assert rotated_path(path, 1).read_bytes() == b"aaaa\nbbbb\n"
    assert path.read_bytes() == b"cccc\n"


def test_at_most_keep_rotated_files_remain_and_the_oldest_lines_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    f = RotatingFile(path, max_bytes=3, keep=2)
    for n in range(6):
        f.append(f"{n}\n".encode())  # one line per file
    assert files(path) == [path, rotated_path(path, 1), rotated_path(path, 2)]
    assert [p.read_bytes() for p in files(path)] == [b"5\n", b"4\n", b"3\n"]


@given(sizes=st.lists(st.integers(min_value=1, max_value=40), max_size=40),
       max_bytes=st.integers(min_value=1, max_value=64), keep=st.integers(min_value=1, max_value=4))
def test_lines_are_never_split_and_no_file_passes_the_limit_unless_it_holds_one_line(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], max_bytes: int, keep: int
) -> None:
    path = tmp_path_factory.mktemp("rot") / "out.jsonl"
    f = RotatingFile(path, max_bytes=max_bytes, keep=keep)
    written = [f"{i:03d}".encode().ljust(size + 3, b"x") + b"\n" for i, size in enumerate(sizes)]
    for line in written:
        f.append(line)
    on_disk = files(path)
    assert len(on_disk) <= keep + 1
    kept = b"".join(p.read_bytes() for p in reversed(on_disk)).splitlines(keepends=True)
    assert kept == written[len(written) - len(kept):]  # whole lines, newest ones, in order
    for p in on_disk:
        content = p.read_bytes()
        assert len(content) <= max_bytes or content.count(b"\n") == 1


def test_a_line_bigger_than_the_limit_is_still_written_alone_in_its_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    f = RotatingFile(path, max_bytes=4)
    f.append(b"ok\n")
    f.append(b"far too long\n")
    f.append(b"ok\n")
    assert [p.read_bytes() for p in files(path)] == [b"ok\n", b"far too long\n", b"ok\n"]


def test_an_empty_file_is_never_rotated_even_for_an_oversized_line(tmp_path: Path) -> None:
    path = tmp_path / "var" / "out.jsonl"
    f = RotatingFile(path, max_bytes=4)
    f.create()  # what a sink does on start: an empty file
    f.append(b"far too long\n")
    assert files(path) == [path]


def test_existing_file_size_counts_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"12345678\n")
    RotatingFile(path, max_bytes=10).append(b"abc\n")
    assert rotated_path(path, 1).read_bytes() == b"12345678\n"
    assert path.read_bytes() == b"abc\n"


def test_file_deleted_from_outside_is_recreated_with_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "var" / "out.jsonl"
    f = RotatingFile(path, max_bytes=100)
    f.append(b"a\n")
    path.unlink()
    path.parent.rmdir()
    f.append(b"b\n")
    assert path.read_bytes() == b"b\n"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most shells have (022): without the fix it made files 0644 and directories 0755."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.usefixtures("usual_umask")
def test_created_files_are_0600_and_every_created_directory_0700_at_start_and_after_deletion(tmp_path: Path) -> None:
    """Found by review: dead letters (message text, Kafka headers) and alerts were readable by every user."""
    path = tmp_path / "var" / "deep" / "out.jsonl"
    f = RotatingFile(path, max_bytes=4)
    f.create()
    f.append(b"one\n")
    f.append(b"two\n")  # rotates: the new file is created by the append
    assert [p.stat().st_mode & 0o777 for p in (path, rotated_path(path, 1))] == [0o600, 0o600]
    for p in (path, rotated_path(path, 1)):
        p.unlink()
    path.parent.rmdir()
    path.parent.parent.rmdir()
    f.append(b"three\n")  # recreated with its directories
    assert [p.stat().st_mode & 0o777 for p in (path, path.parent, path.parent.parent)] == [0o600, 0o700, 0o700]


@pytest.mark.usefixtures("usual_umask")
def test_an_existing_directory_and_file_keep_the_modes_their_owner_gave_them(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    path = directory / "out.jsonl"
    path.write_bytes(b"")
    path.chmod(0o640)
    RotatingFile(path, max_bytes=100).append(b"a\n")
    assert (directory.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o755, 0o640)


def test_a_device_such_as_dev_null_is_never_rotated() -> None:
    f = RotatingFile(Path(os.devnull), max_bytes=1)
    f.append(b"dropped\n")
    f.append(b"dropped\n")
    assert not rotated_path(Path(os.devnull), 1).exists()


def test_fsynced_file_rotates_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    f = RotatingFile(path, max_bytes=4, fsync=True)
    f.append(b"one\n")
    f.append(b"two\n")
    assert [p.read_bytes() for p in files(path)] == [b"two\n", b"one\n"]


@pytest.mark.parametrize(("max_bytes", "keep", "match"), [(0, 5, "max_bytes"), (10, 0, "keep")])
def test_non_positive_limits_are_rejected(tmp_path: Path, max_bytes: int, keep: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RotatingFile(tmp_path / "out.jsonl", max_bytes=max_bytes, keep=keep)


LIMITED_WRITER = """
import resource, signal, sys
from pathlib import Path
from monitor.rotating_file import RotatingFile

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed at the limit
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
out = RotatingFile(Path(sys.argv[1]), max_bytes=1 << 20)
for n in range(4):
    try:
        out.append(b'{"n": %d, "pad": "%s"}\\n' % (n, b"x" * 40))
        print("ok", n)
    except OSError as exc:
        print("failed", n, exc.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
out.append(b'{"n": 9}\\n')  # the retry after the operator made room
"""


def test_a_write_that_fails_part_way_leaves_no_torn_line_behind(tmp_path: Path) -> None:
    """A real file size limit (RLIMIT_FSIZE, in a child process) cuts the third line in the middle: the
    kernel writes what fits and then refuses. The file must end at the last whole line, so the retry's line
    follows it cleanly (before, the torn half stayed and the next line was glued to it)."""
    path = tmp_path / "dead-letter.jsonl"
    line_bytes = len(b'{"n": 0, "pad": "%s"}\n' % (b"x" * 40))
    limit = 2 * line_bytes + 10  # room for two lines and a piece of the third
    result = subprocess.run([sys.executable, "-c", LIMITED_WRITER, str(path), str(limit)], capture_output=True,
                            text=True, timeout=60, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["ok 0", "ok 1", f"failed 2 {errno.EFBIG}", f"failed 3 {errno.EFBIG}"]
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 9]
