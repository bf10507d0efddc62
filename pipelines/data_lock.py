"""One writer per data directory, across processes.

``flock`` on ``DATA/.tyokyky.lock``: the kernel drops the lock when its holder dies, even
by ``kill -9``, so a lock is never stale and needs no cleaning. The holder writes its pid,
what it is doing and since when into the file, so that whoever waits can name it. The lock
is re-entrant within a process: ``tyokyky run`` holds it and the Dagster steps it runs in
process take it again for free; a run launched by the Dagster daemon takes it in each step.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".tyokyky.lock"
#: run tag naming the process that executes a run, so that a later run can tell it died
PROCESS_TAG = "tyokyky/process"
#: how long a step of a daemon-launched run waits for another process (e.g. ``tyokyky run``)
STEP_WAIT_SECONDS = 30 * 60

_held: dict[str, list] = {}   # lock path -> [fd, depth]
_guard = threading.Lock()


class DataDirBusy(Exception):
    """Another process holds the data directory; the message names it (one line)."""


def process_token(pid: int | None = None) -> str | None:
    """``host:pid:start`` of a process (its start time tells a reused pid apart), or None
    when there is no such process or it is a zombie."""
    pid = pid or os.getpid()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return f"{socket.gethostname()}:{pid}:?"
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return f"{socket.gethostname()}:{pid}:{fields[19]}"


def process_alive(token: str) -> bool:
    """Whether the process a token names is still running (on another host: assume so)."""
    host, pid, _ = token.split(":", 2)
    if host != socket.gethostname():
        return True
    now = process_token(int(pid))
    return now is not None and (now == token or now.endswith(":?") or token.endswith(":?"))


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return f"{info.get('what', 'another process')} (pid {info.get('pid')}, since {info.get('since')})"


@contextmanager
def data_lock(data: Path, what: str, wait_seconds: float = 0):
    """Hold the data directory; raise DataDirBusy naming the holder after ``wait_seconds``."""
    data = Path(data)
    data.mkdir(parents=True, exist_ok=True)
    path = data / LOCK_FILE
    key = str(path.resolve())
    with _guard:
        if key in _held:
            _held[key][1] += 1
            reentrant = True
        else:
            reentrant = False
    if reentrant:
        try:
            yield
        finally:
            with _guard:
                _held[key][1] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DataDirBusy(f"data directory {data} is in use by {_holder(path)}: wait for it to "
                                      "finish (or stop it) and try again") from None
                time.sleep(0.5)
        info = {"pid": os.getpid(), "what": what,
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _guard:
            _held[key] = [fd, 1]
        try:
            yield
        finally:
            with _guard:
                del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock


@contextmanager
def step_lock(context, data: Path):
    """For a Dagster step: tag its run with this process (so that a later run can tell
    whether it died), then hold the data directory, waiting for another holder."""
    token = process_token()
    run = context.instance.get_run_by_id(context.run_id)
    if token and run is not None and PROCESS_TAG not in run.tags:
        context.instance.add_run_tags(context.run_id, {PROCESS_TAG: token})
    with data_lock(data, f"Dagster run {context.run_id[:8]}", wait_seconds=STEP_WAIT_SECONDS):
        yield
