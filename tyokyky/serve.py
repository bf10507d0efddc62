"""``tyokyky serve``: the production instance in the foreground until Ctrl-C (or ``serve --stop``).

PostgreSQL (embedded under DATA/postgres, or the server named by TYOKYKY_PG_URL), then
``dagster-daemon`` (sensors, schedule, run queue, run retries, alerts) and the webserver on
127.0.0.1:PORT, each in a process group of its own so that stopping reaches the code servers
and run workers they start. DATA/serve.json records what was started, so that
``serve --stop`` from another shell can stop it, and stop it even if serve itself was killed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from assets.instance import write_production_config
from pipelines import postgres
from pipelines.settings import Settings
from pseudonymize import KeyFileError, load_key_file

STATE_FILE = "serve.json"
HOST = "127.0.0.1"
STARTUP_SECONDS = 180      # code location load on a busy 2-core machine
STOP_SECONDS = 60          # graceful stop of daemon and webserver before SIGKILL


class ServeError(Exception):
    """Serve cannot start or stop; the message is one line for the user."""


class _Stop(Exception):
    """SIGTERM: stop as for Ctrl-C."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen


def _raise_stop(signum, frame):
    raise _Stop()


def _state_path(settings: Settings) -> Path:
    return settings.data / STATE_FILE


def _read_state(settings: Settings) -> dict | None:
    try:
        return json.loads(_state_path(settings).read_text())
    except (OSError, ValueError):
        return None


def _write_state(settings: Settings, state: dict) -> None:
    tmp = _state_path(settings).with_suffix(".json.new")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(_state_path(settings))


def _alive(pid: int, create_time: float) -> bool:
    """Is this the process we recorded (not another that reuses its pid)?"""
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 1 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group(pgid: int) -> list[psutil.Process]:
    """Live members of a process group."""
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                members.append(p)
        except (OSError, psutil.Error):
            continue
    return members


def _stop_group(pgid: int, reap=None, seconds: float = STOP_SECONDS) -> None:
    """SIGTERM a process group, wait until it is gone, SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if reap:
                reap()
            if not _group(pgid):
                return
            time.sleep(0.2)


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ServeError(f"{name} is not installed in this environment: pip install -e . (or make serve)")
    return found


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            raise ServeError(f"port {port} on {HOST} is in use: stop what uses it or choose another with --port") \
                from None


def _environment(settings: Settings) -> dict:
    env = dict(os.environ, DAGSTER_HOME=str(settings.dagster_home.resolve()),
               TYOKYKY_DATA=str(settings.data.resolve()), TYOKYKY_LANDING=str(settings.landing.resolve()),
               TYOKYKY_KEY_FILE=str(settings.key_file.resolve()))
    if postgres.external_url():
        env[postgres.PG_URL_ENV] = postgres.external_url()
    if settings.parameters_file:
        env["TYOKYKY_PARAMETERS"] = str(settings.parameters_file.resolve())
    return env


def _start(name: str, args: list[str], env: dict, logs: Path) -> Child:
    log = open(logs / f"{name}.log", "ab")
    try:
        process = subprocess.Popen([_executable(name), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    return Child(name, process)


def _check_children(children: list[Child], logs: Path) -> None:
    for c in children:
        if (code := c.process.poll()) is not None:
            raise ServeError(f"{c.name} stopped unexpectedly (exit code {code}): see {logs / (c.name + '.log')}")


def _wait_until_ready(port: int, children: list[Child], logs: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        _check_children(children, logs)
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/server_info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServeError(f"the Dagster webserver did not answer within {STARTUP_SECONDS} s: "
                     f"see {logs / 'dagster-webserver.log'}")


def _check_settings(settings: Settings) -> None:
    if not settings.landing.is_dir():
        raise ServeError(f"landing zone {settings.landing} is not a folder: create it or give --landing")
    try:
        load_key_file(settings.key_file)
    except KeyFileError as e:
        raise ServeError(str(e)) from None


def _running(settings: Settings) -> dict | None:
    state = _read_state(settings)
    if state and _alive(state["pid"], state["create_time"]):
        return state
    return None


def serve(settings: Settings, port: int = 3000, out=print) -> int:
    """Run until Ctrl-C or SIGTERM; stop everything that was started, in reverse order."""
    _check_settings(settings)
    if (state := _running(settings)):
        raise ServeError(f"already serving {settings.data} (pid {state['pid']}): "
                         f"stop it with 'tyokyky serve --stop --data {settings.data}'")
    _check_port_free(port)
    settings.data.mkdir(parents=True, exist_ok=True)
    logs = settings.data / "logs"
    logs.mkdir(exist_ok=True)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background by a script
    signal.signal(signal.SIGTERM, _raise_stop)
    children: list[Child] = []
    external = postgres.external_url()
    me = psutil.Process()
    try:
        if external:
            postgres.check_reachable(external)
            where = postgres.describe(external)
        else:
            out(f"starting PostgreSQL in {postgres.embedded_dir(settings.data)}")
            postgres.start_embedded(settings.data)
            where = str(postgres.embedded_dir(settings.data))
        # external: the file names the variable, never the URL (it may hold a password)
        write_production_config(settings.dagster_home, None if external else postgres.embedded_url(settings.data))
        env = _environment(settings)
        workspace = ["-m", "assets.definitions"]
        children.append(_start("dagster-daemon", ["run", *workspace], env, logs))
        children.append(_start("dagster-webserver", ["-h", HOST, "-p", str(port), *workspace], env, logs))
        _write_state(settings, {
            "pid": me.pid, "create_time": me.create_time(), "port": port, "postgres": "external" if external else "embedded",
            "children": [{"name": c.name, "pid": c.process.pid,
                          "create_time": psutil.Process(c.process.pid).create_time()} for c in children]})
        _wait_until_ready(port, children, logs)
        out(f"serving: Dagster UI http://{HOST}:{port}, daemon pid {children[0].process.pid}, "
            f"PostgreSQL {where}, instance {settings.dagster_home}, logs {logs}")
        out("stop with Ctrl-C or 'tyokyky serve --stop'")
        while True:
            _check_children(children, logs)
            time.sleep(1)
    except (KeyboardInterrupt, _Stop):
        out("stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for c in reversed(children):
            _stop_group(c.process.pid, reap=c.process.poll)
        if not external:
            postgres.stop_embedded(settings.data)
        _state_path(settings).unlink(missing_ok=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop(settings: Settings, out=print) -> int:
    """Stop a serve of this data directory; return when every process it started is gone."""
    state = _read_state(settings)
    if state is None:
        if postgres.embedded_running(settings.data):
            postgres.stop_embedded(settings.data)
            out(f"stopped PostgreSQL in {postgres.embedded_dir(settings.data)}")
            return 0
        out(f"tyokyky serve is not running for {settings.data}")
        return 0
    if _alive(state["pid"], state["create_time"]):
        os.kill(state["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 2 * STOP_SECONDS + 30
        while _alive(state["pid"], state["create_time"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(state["pid"], state["create_time"]):
            raise ServeError(f"tyokyky serve (pid {state['pid']}) did not stop within "
                             f"{2 * STOP_SECONDS + 30} s: see {settings.data / 'logs'}")
    # serve was killed before it could clean up: stop what it left behind
    for child in state.get("children", []):
        if _alive(child["pid"], child["create_time"]) or _group(child["pid"]):
            _stop_group(child["pid"])
    if state.get("postgres") == "embedded":
        postgres.stop_embedded(settings.data)
    _state_path(settings).unlink(missing_ok=True)
    out(f"stopped tyokyky serve for {settings.data}")
    return 0
