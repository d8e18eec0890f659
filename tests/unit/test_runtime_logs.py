"""conmon's k8s-file log: parsing, P/F joining, filters, tail, follow, Docker framing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wharf.daemon.core.runtime import logs
from wharf.daemon.core.runtime.logs import LogEntry, follow_logs, read_logs
from wharf.dockerapi import STDERR, STDOUT, frame

T0 = 1_795_824_000  # 2026-11-28T00:00:00Z


def line(second: int, stream: str, tag: str, text: str, nanos: int = 5) -> str:
    hh, mm, ss = second // 3600, second // 60 % 60, second % 60
    return f"2026-11-28T{hh:02d}:{mm:02d}:{ss:02d}.{nanos:09d}+00:00 {stream} {tag} {text}\n"


def write(path: Path, *lines: str) -> Path:
    path.write_bytes("".join(lines).encode())
    return path


def datas(entries: list[LogEntry]) -> list[tuple[str, bytes]]:
    return [(e.stream, e.data) for e in entries]


def test_entries_carry_normalised_time_and_a_newline(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "hi", nanos=512506259),
                "2026-11-28T02:00:02.5+01:00 stderr F err\n")
    out = read_logs(log)
    assert out == [
        LogEntry("2026-11-28T00:00:01.512506259Z", (T0 + 1) * 10**9 + 512506259, "stdout",
                 b"hi\n"),
        LogEntry("2026-11-28T01:00:02.500000000Z", (T0 + 3602) * 10**9 + 500_000_000,
                 "stderr", b"err\n"),
    ]


def test_partial_lines_join_per_stream(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log",
                line(1, "stdout", "P", "abc"),
                line(2, "stderr", "F", "oops"),
                line(3, "stdout", "P", " def"),
                line(4, "stdout", "F", "!"),
                line(5, "stdout", "F", ""),
                line(6, "stdout", "F", "tty\r"))
    out = read_logs(log)
    assert datas(out) == [("stderr", b"oops\n"), ("stdout", b"abc def!\n"), ("stdout", b"\n"),
                          ("stdout", b"tty\r\n")]
    assert out[1].unix_nanos == (T0 + 1) * 10**9 + 5  # the chain's first line


def test_text_keeps_its_spaces_and_bytes(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(line(1, "stdout", "F", "  two  spaces ").encode() + b"2026-11-28T00:00:02"
                    b".1Z stdout F \xff\xfe binary\n")
    assert datas(read_logs(log)) == [("stdout", b"  two  spaces \n"),
                                     ("stdout", b"\xff\xfe binary\n")]


def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log",
                "garbage\n", "\n", "2026-13-45T00:00:00.1Z stdout F bad date\n",
                "2026-11-28T00:00:01.1Z stdin F wrong stream\n",
                "2026-11-28T00:00:01.1Z stdout X wrong tag\n",
                "2026-11-28T00:00:01 stdout F no zone\n",
                line(7, "stdout", "F", "good"))
    assert datas(read_logs(log)) == [("stdout", b"good\n")]


def test_missing_file_and_unterminated_chain(tmp_path: Path) -> None:
    assert read_logs(tmp_path / "nope.log") == []
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "a"), line(2, "stdout", "P", "$ "),
                "2026-11-28T00:00:03.1Z stdout F half-writ")  # no newline yet: not read
    assert datas(read_logs(log)) == [("stdout", b"a\n"), ("stdout", b"$ ")]


def test_stream_and_time_filters(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", *(line(i, "stdout" if i % 2 else "stderr", "F", str(i))
                                        for i in range(10)))
    assert [e.data for e in read_logs(log, stderr=False)] == [b"1\n", b"3\n", b"5\n", b"7\n",
                                                              b"9\n"]
    assert [e.data for e in read_logs(log, stdout=False, since=T0 + 4, until=T0 + 8)] == [
        b"4\n", b"6\n", b"8\n"]
    assert read_logs(log, stdout=False, stderr=False) == []


def test_tail(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", *(line(i, "stdout" if i % 3 else "stderr", "F", str(i))
                                        for i in range(10)))
    assert [e.data for e in read_logs(log, tail=3)] == [b"7\n", b"8\n", b"9\n"]
    assert [e.data for e in read_logs(log, tail=2, stdout=False)] == [b"6\n", b"9\n"]
    assert [e.data for e in read_logs(log, tail=2, until=T0 + 5)] == [b"4\n", b"5\n"]
    assert len(read_logs(log, tail=100)) == 10
    assert read_logs(log, tail=0) == []


def test_tail_reads_a_large_log_backwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """Chains cut by the backwards window are never returned half; the whole log is equal to
    a forward read."""
    monkeypatch.setattr(logs, "_BLOCK", 256)
    lines = []
    for i in range(400):
        if i % 7 == 0:  # a long stderr chain interleaved with stdout lines
            lines += [line(i, "stderr", "P", f"e{i}-a"), line(i, "stdout", "F", f"o{i}"),
                      line(i, "stderr", "P", "-b" * 40), line(i, "stderr", "F", "-c")]
        else:
            lines.append(line(i, "stdout", "F", f"o{i}"))
    log = write(tmp_path / "ctr.log", *lines)
    full = read_logs(log)
    for n in (1, 2, 3, 10, 50, 399, 500):
        assert read_logs(log, tail=n) == full[-n:], n
        only_err = [e for e in full if e.stream == "stderr"]
        assert read_logs(log, tail=n, stdout=False) == only_err[-n:], n


def test_tail_of_a_big_file_is_fast(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    block = "".join(line(i % 86400, "stdout", "F", f"line {i} " + "x" * 60) for i in range(10000))
    with log.open("w") as f:
        for _ in range(100):  # ~90 MB
            f.write(block)
    loop = asyncio.new_event_loop()
    try:
        start = loop.time()
        out = read_logs(log, tail=5)
        assert loop.time() - start < 0.5
    finally:
        loop.close()
    assert [e.data.split()[1] for e in out] == [b"9995", b"9996", b"9997", b"9998", b"9999"]


def test_frame() -> None:
    assert frame(STDOUT, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frame(STDERR, b"err1\n") == b"\x02\x00\x00\x00\x00\x00\x00\x05err1\n"
    assert frame(STDOUT, b"x" * 70000)[:8] == b"\x01\x00\x00\x00\x00\x01\x11\x70"


async def _collect(path: Path, done: list[bool], *, stdout: bool = True, since: float | None = None,
                   until: float | None = None, tail: int | None = None) -> list[LogEntry]:
    out = []
    async for entry in follow_logs(path, stdout=stdout, since=since, until=until, tail=tail,
                                   finished=lambda: done[0], poll=0.01):
        out.append(entry)
    return out


def test_follow_yields_backlog_then_appended_lines_and_stops(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", *(line(i, "stdout", "F", str(i)) for i in range(5)))
    done = [False]

    async def scenario() -> list[LogEntry]:
        task = asyncio.create_task(_collect(log, done, tail=2))
        await asyncio.sleep(0.05)
        with log.open("a") as f:
            f.write(line(10, "stderr", "P", "par"))
            f.flush()
            await asyncio.sleep(0.05)
            f.write(line(11, "stdout", "F", "new")[:-5])  # an incomplete line
            f.flush()
            await asyncio.sleep(0.05)
            f.write(line(11, "stdout", "F", "new")[-5:] + line(12, "stderr", "F", "tial"))
            f.write(line(13, "stdout", "P", "no newline at exit"))
        done[0] = True  # written before finished() turned true: must still come
        return await asyncio.wait_for(task, 5)

    out = asyncio.run(scenario())
    assert datas(out) == [("stdout", b"3\n"), ("stdout", b"4\n"), ("stdout", b"new\n"),
                          ("stderr", b"partial\n"), ("stdout", b"no newline at exit")]


def test_follow_filters_and_waits_for_a_missing_file(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    done = [False]

    async def scenario() -> list[LogEntry]:
        task = asyncio.create_task(_collect(log, done, stdout=False, since=T0 + 2))
        await asyncio.sleep(0.05)
        write(log, *(line(i, "stderr" if i % 2 else "stdout", "F", str(i)) for i in range(6)))
        await asyncio.sleep(0.05)
        done[0] = True
        return await asyncio.wait_for(task, 5)

    assert [e.data for e in asyncio.run(scenario())] == [b"3\n", b"5\n"]


def test_follow_with_tail_zero_only_shows_new_lines(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "old"),
                line(2, "stdout", "P", "open "))
    done = [False]

    async def scenario() -> list[LogEntry]:
        task = asyncio.create_task(_collect(log, done, tail=0))
        await asyncio.sleep(0.05)
        with log.open("a") as f:
            f.write(line(3, "stdout", "F", "chain"))
        done[0] = True
        return await asyncio.wait_for(task, 5)

    assert datas(asyncio.run(scenario())) == [("stdout", b"open chain\n")]


def test_follow_stops_at_until(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "x"))

    async def scenario() -> list[LogEntry]:
        return await asyncio.wait_for(_collect(log, [False], until=T0 + 10), 5)

    assert datas(asyncio.run(scenario())) == [("stdout", b"x\n")]


def _append(path: Path, *lines: str) -> None:
    with path.open("ab") as handle:
        handle.write("".join(lines).encode())


def test_a_cursor_reader_sees_each_entry_once_and_never_cuts_a_chain(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", line(1, "stdout", "F", "a"),
                line(2, "stdout", "P", "long-"))
    first = logs.read_page(log, None)
    assert datas(first.entries) == [("stdout", b"a\n")]  # the open chain waits
    # stderr finishes entries while stdout's chain stays open: they come once each
    _append(log, line(3, "stderr", "F", "e1"))
    second = logs.read_page(log, first.cursor)
    assert datas(second.entries) == [("stderr", b"e1\n")]
    _append(log, line(4, "stderr", "F", "e2"), line(5, "stdout", "F", "line"))
    third = logs.read_page(log, second.cursor)
    assert datas(third.entries) == [("stderr", b"e2\n"), ("stdout", b"long-line\n")]
    assert logs.read_page(log, third.cursor).entries == []
    # the writer is gone: a chain left open is handed out at the end
    _append(log, line(6, "stdout", "P", "tail"))
    assert logs.read_page(log, third.cursor).entries == []
    last = logs.read_page(log, third.cursor, flush=True)
    assert datas(last.entries) == [("stdout", b"tail")]


def test_a_cursor_page_is_bounded_and_a_cut_log_starts_again(tmp_path: Path) -> None:
    log = write(tmp_path / "ctr.log", *(line(1, "stdout", "F", f"n{i}") for i in range(100)))
    got, cursor, pages = [], None, 0
    page = logs.read_page(log, None, tail=0)
    assert page.entries == [] and page.cursor[1] == log.stat().st_size
    cursor = (0, 0)  # from the start, in small pages
    while True:
        page = logs.read_page(log, cursor, limit=500)
        got += [e.data for e in page.entries]
        cursor, pages = page.cursor, pages + 1
        if not page.more:
            break
    assert got == [f"n{i}\n".encode() for i in range(100)] and pages > 5
    write(log, line(2, "stdout", "F", "after rotation"))  # shorter than what was seen
    assert datas(logs.read_page(log, cursor).entries) == [("stdout", b"after rotation\n")]
