"""Open the knowledge base for reading only — for ``tyokyky query`` and evaluators' notebooks.

``read_only=True`` stops writes to the database, but SQL could still read any file the
process can (the key file, raw landing CSVs) and COPY or EXPORT over staging files, which
the next build would load. So external access is switched off (no file reads or writes,
no ATTACH, INSTALL or LOAD) and the configuration is then locked, so SQL cannot switch it
back on::

    from pipelines.kb_access import connect
    con = connect("data/tyokyky.duckdb")
"""
from __future__ import annotations

from pathlib import Path

import duckdb

LOCKED_DOWN = {"enable_external_access": False, "autoinstall_known_extensions": False,
               "autoload_known_extensions": False, "allow_community_extensions": False}


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only, locked-down connection to the knowledge base at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no knowledge base at {path}: build one with 'tyokyky run' (or 'make demo')")
    con = duckdb.connect(str(path), read_only=True, config=LOCKED_DOWN)
    con.execute("SET lock_configuration = true")
    return con
