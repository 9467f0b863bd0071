"""conmon's on-disk protocol as runtime/monitor.py reads it: exit files, the OOM marker, the k8s-file log,
the attach socket and the control fifo — with real files, a real fifo and a real SOCK_SEQPACKET socket."""

from __future__ import annotations

import os
import socket
import subprocess

from nanovisor.runtime.monitor import Monitor, docker_timestamp, log_lines, parse_log_record, resize

TS = b"2024-05-01T10:00:00.123456789+00:00"


def test_exit_file_code_time_and_forget(tmp_path):
    exits, bundle = tmp_path / "exits", tmp_path / "bundle"
    exits.mkdir()
    bundle.mkdir()
    proc = subprocess.Popen(["sleep", "60"])
    try:
        from nanovisor.runtime.procs import start_time

        m = Monitor("c1", bundle, exits, proc.pid, start_time(proc.pid))
        assert m.alive() and not m.exited() and m.exit_recorded_at() == 0.0
        (exits / "c1").write_text("137\n")
        assert m.exited()  # the exit file is enough, conmon may still be flushing
        code, when = m.exit_status()
        assert code == 137 and when == (exits / "c1").stat().st_mtime == m.exit_recorded_at()
        assert not m.oom_killed()
        (bundle / "oom").touch()
        assert m.oom_killed()
        m.forget_exit()
        assert not (exits / "c1").exists() and not m.exited()
    finally:
        proc.kill()
        proc.wait()
    assert m.exited()  # conmon gone without an exit file ...
    assert m.exit_status()[0] == 255  # ... is Docker's unrecorded exit


def test_a_reused_pid_is_not_the_monitor(tmp_path):
    m = Monitor("c1", tmp_path, tmp_path, os.getpid(), started=1)  # our pid, another start time
    assert not m.alive() and m.exited()


def test_log_record_parsing():
    assert parse_log_record(TS + b" stdout F hello world") == (TS, 1, False, b"hello world")
    assert parse_log_record(TS + b" stderr P part") == (TS, 2, True, b"part")
    assert parse_log_record(TS + b" stdout F") == (TS, 1, False, b"")
    assert parse_log_record(b"garbage") is None
    assert docker_timestamp(TS) == b"2024-05-01T10:00:00.123456789Z"


def test_log_lines_join_partials_per_stream(tmp_path):
    log = tmp_path / "ctr.log"
    log.write_bytes(TS + b" stdout P long \n" + TS.replace(b"00.1", b"01.1") + b" stderr F err line\n"
                    + TS + b" stdout F line\n" + TS + b" stdout P tail-without-newline\n")
    assert list(log_lines(log)) == [
        (2, b"2024-05-01T10:00:01.123456789Z", b"err line\n"),
        (1, b"2024-05-01T10:00:00.123456789Z", b"long line\n"),
        (1, b"2024-05-01T10:00:00.123456789Z", b"tail-without-newline"),
    ]
    assert list(log_lines(tmp_path / "missing.log")) == []


def test_log_follow_reads_past_a_rotation(tmp_path):
    log = tmp_path / "ctr.log"
    log.write_bytes(TS + b" stdout F one\n" + TS + b" stdout F two\n")
    looks = []

    def follow() -> bool:  # the container "runs" for two looks; the file is rotated in between
        looks.append(1)
        if len(looks) == 1:
            (tmp_path / "new.log").write_bytes(TS + b" stdout F three\n")
            os.replace(tmp_path / "new.log", log)
        return len(looks) < 3

    assert [line for _, _, line in log_lines(log, follow)] == [b"one\n", b"two\n", b"three\n"]


def test_attach_socket_streams_and_stdin(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(str(tmp_path / "attach"))
    server.listen(1)
    session = Monitor("c1", tmp_path, tmp_path).attach(tty=False, stdin=True, stdout=True, stderr=False)
    session.connect()
    conn, _ = server.accept()
    try:
        conn.send(b"\x03not wanted")  # stderr was not asked for
        conn.send(b"\x02out")
        assert session.read() == (1, b"out")
        session.write(b"typed\n")
        assert conn.recv(100) == b"typed\n"
        session.close_stdin()
        assert conn.recv(100) == b""  # stdin closed: conmon closes the container's stdin
        conn.close()
        assert session.read() is None
    finally:
        session.close()
        server.close()


def test_resize_through_the_control_fifo(tmp_path):
    resize(tmp_path, 24, 80)  # no fifo (conmon gone): nothing happens
    os.mkfifo(tmp_path / "ctl")
    reader = os.open(tmp_path / "ctl", os.O_RDONLY | os.O_NONBLOCK)
    try:
        Monitor("c1", tmp_path, tmp_path).resize(30, 100)
        assert os.read(reader, 100) == b"1 30 100\n"
    finally:
        os.close(reader)
