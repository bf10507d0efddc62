"""The PostgreSQL server behind the production Dagster instance (``tyokyky serve``).

Either the server named by ``TYOKYKY_PG_URL`` or an embedded one: pgserver ships the
PostgreSQL 16 binaries in a wheel, so a fresh machine needs nothing else. The embedded
server keeps its files in ``DATA/postgres`` and listens only on a Unix socket inside that
folder (mode 0700), so nothing outside the deployment's user can reach it.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import time
from pathlib import Path

PG_URL_ENV = "TYOKYKY_PG_URL"
DATABASE = "dagster"


class PostgresError(Exception):
    """The server cannot be started or reached; the message is one line for the user."""


def external_url() -> str | None:
    """TYOKYKY_PG_URL, with the driver Dagster's storage uses named in the scheme."""
    url = os.environ.get(PG_URL_ENV)
    return dagster_url(url) if url else None


def dagster_url(url: str) -> str:
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships psycopg2."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)


def libpq_url(url: str) -> str:
    """The same URL as psycopg2 (libpq) itself reads it."""
    return re.sub(r"^postgresql\+psycopg2://", "postgresql://", url)


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


def embedded_dir(data: Path) -> Path:
    return Path(data).resolve() / "postgres"


def embedded_url(data: Path, database: str = DATABASE) -> str:
    """Connection URL of the embedded server: trust auth over the socket in DATA/postgres."""
    return f"postgresql+psycopg2://postgres:@/{database}?host={embedded_dir(data)}"


def start_embedded(data: Path) -> str:
    """Start (or attach to) the embedded server under DATA/postgres; return its URL.

    The server keeps running until :func:`stop_embedded`: serve stops it itself, so that
    Ctrl-C and ``serve --stop`` end in the same state.
    """
    try:
        import pgserver
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise PostgresError(f"the embedded PostgreSQL server is not installed ({e}): "
                            f"pip install pgserver, or set {PG_URL_ENV}") from None
    pgdata = embedded_dir(data)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.CRITICAL)   # it logs the whole server log on failure
    try:
        pgserver.get_server(pgdata, cleanup_mode=None)
    except Exception as e:  # pgserver raises CalledProcessError, TimeoutExpired, OSError, ...
        raise PostgresError(f"cannot start PostgreSQL in {pgdata} ({type(e).__name__}): "
                            f"see {pgdata / 'log'}, or set {PG_URL_ENV} to use an existing server") from None
    create_database(embedded_url(data, "postgres"), DATABASE)
    return embedded_url(data)


def embedded_running(data: Path) -> int | None:
    """The postmaster's pid when the embedded server under DATA is running, else None."""
    import psutil

    try:
        pid = int((embedded_dir(data) / "postmaster.pid").read_text().split()[0])
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return pid
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def stop_embedded(data: Path, seconds: float = 120) -> None:
    """Stop the embedded server with PostgreSQL's fast shutdown (SIGINT to the postmaster: open
    transactions roll back, a checkpoint is written) and wait until it is gone. Signalling works
    for root too, where pg_ctl would have to run as the server's user."""
    pid = embedded_running(data)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + seconds
    while embedded_running(data) == pid:   # the postmaster removes its pid file last
        if time.monotonic() > deadline:
            raise PostgresError(f"PostgreSQL (pid {pid}) did not stop within {seconds:.0f} s: "
                                f"see {embedded_dir(data) / 'log'}")
        time.sleep(0.1)


def create_database(admin_url: str, name: str) -> None:
    import psycopg2

    con = psycopg2.connect(libpq_url(admin_url))
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()


def check_reachable(url: str) -> None:
    """Connect once, so that a wrong URL is one line here instead of tracebacks in every process."""
    import psycopg2

    try:
        psycopg2.connect(libpq_url(url), connect_timeout=10).close()
    except psycopg2.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PostgresError(f"cannot connect to PostgreSQL at {describe(url)}: {first}; "
                            f"check {PG_URL_ENV}") from None
