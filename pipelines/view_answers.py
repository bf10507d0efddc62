"""The contract views' answers of a build, kept beside its knowledge base for the report.

The build evaluates every contract view once on the finished file, opened read-only, before it
swaps the file in (:func:`pipelines.knowledge_base.views_answer_as_opened`). The steering report
reads most of the same views moments later, and evaluating them again was half of its time at
1 M persons (1.3–1.8 s: the impact views and the cost savings read every TTK unit and payment).
So the build's evaluation writes each answer into a small DuckDB file, ``<kb>.view_answers.duckdb``
(exact types: the answer is made by DuckDB from the view), stamped with the knowledge base it was
computed from: its inode, size and modification time, and ``kb.build_info.built_at``. The report
reads the knowledge base through :func:`connect`, in which each kept answer stands in for its view
when the stamp matches the file; for any other file (another build, a rekeyed or restored file, a
file changed in place since: its write-ahead log is beside it) the views are evaluated as
evaluators evaluate them.

The answers are exact aggregates of the contract views, as in the knowledge base (small counts,
delivery file names as redacted there): no pseudonym, no erasure token, nothing the knowledge base
does not hold, and with the same access.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.casting import lit


def path_of(kb_path: Path) -> Path:
    return kb_path.with_name(f"{kb_path.stem}.view_answers.duckdb")


def building_path(kb_path: Path) -> Path:
    """Where a build writes the answers before they are swapped in (one build at a time)."""
    final = path_of(kb_path)
    return final.with_name(final.name + ".building")


def leftovers(kb_path: Path) -> list[Path]:
    """What an interrupted build may leave of the answers (see ``assets/recovery.py``)."""
    b = building_path(kb_path)
    return [b, b.with_name(b.name + ".wal")]


def _identity(path: Path) -> tuple[int, int, int]:
    s = path.stat()
    return s.st_ino, s.st_size, s.st_mtime_ns


def evaluate(con: duckdb.DuckDBPyConnection, building: Path, target: Path, views: list[str]
             ) -> dict[str, pa.Table | None]:
    """Each view's answer on ``con`` (the file ``building``, opened read-only, to be swapped in as
    ``target``), or None where it does not answer; the answers are kept in :func:`building_path`
    for :func:`swap_in`. One evaluation of each view: the answer is read back from what was kept."""
    kept = building_path(target)
    discard(target)
    con.execute(f"ATTACH {lit(str(kept))} AS kept_answers (READ_WRITE)")
    try:
        con.execute("CREATE SCHEMA kept_answers.ind")
        inode, size, mtime_ns = _identity(building)
        con.execute("CREATE TABLE kept_answers.stamp AS SELECT ?::UBIGINT AS inode, ?::UBIGINT AS size, "
                    "?::HUGEINT AS mtime_ns, (SELECT built_at FROM kb.build_info) AS built_at",
                    [inode, size, mtime_ns])
        answers: dict[str, pa.Table | None] = {}
        for view in views:
            try:
                con.execute(f'CREATE TABLE kept_answers.ind."{view}" AS SELECT * FROM ind."{view}"')
                answers[view] = con.sql(f'SELECT * FROM kept_answers.ind."{view}"').to_arrow_table()
            except duckdb.Error:
                answers[view] = None
    except BaseException:
        con.execute("DETACH kept_answers")
        discard(target)
        raise
    con.execute("DETACH kept_answers")
    return answers


def swap_in(target: Path) -> None:
    """The answers kept by :func:`evaluate` replace the previous build's, once ``target`` is in place.
    Should that fail, the previous answers stay, whose stamp is of the previous file: the report
    evaluates the views."""
    try:
        os.replace(building_path(target), path_of(target))
    except OSError:
        discard(target)


def discard(target: Path) -> None:
    """No answers made for ``target`` (before a build makes them, or when it stops after)."""
    for leftover in leftovers(target):
        leftover.unlink(missing_ok=True)


def _matches(con: duckdb.DuckDBPyConnection, kb_path: Path) -> bool:
    """The kept answers (attached as ``kept_answers``) are of the file attached as ``kb_file``: the
    same build (``built_at``, read through the very handles the report reads), the file at the path
    is the one stamped (so the handle is too: it was opened before this stat) and nothing was
    written to it since (a write-ahead log beside it is replayed on opening)."""
    stamp = con.sql("SELECT inode, size, mtime_ns, built_at FROM kept_answers.stamp").fetchall()
    built = con.sql("SELECT built_at FROM kb_file.kb.build_info").fetchall()
    if len(stamp) != 1 or len(built) != 1 or stamp[0][3] != built[0][0]:
        return False
    wal = kb_path.with_name(kb_path.name + ".wal")
    return tuple(stamp[0][:3]) == _identity(kb_path) and not wal.exists()


def connect(kb_path: Path) -> duckdb.DuckDBPyConnection:
    """The knowledge base ``kb_path`` for the report. With answers kept for this very file: an
    in-memory database whose ``kb`` and ``ind`` are views over the file (attached read-only), but
    for the kept views, which are views over their answers (attached read-only: nothing can be
    written through either). Otherwise the file itself, opened read-only."""
    kept = path_of(kb_path)
    if kept.exists():
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH {lit(str(kb_path))} AS kb_file (READ_ONLY)")
            con.execute(f"ATTACH {lit(str(kept))} AS kept_answers (READ_ONLY)")
            if _matches(con, kb_path):
                _mirror(con)
                return con
        except duckdb.Error:  # unreadable answers, or a file without kb.build_info: no answers
            pass
        con.close()
    return duckdb.connect(str(kb_path), read_only=True)


def _mirror(con: duckdb.DuckDBPyConnection) -> None:
    answered = {n for (n,) in con.sql("SELECT table_name FROM duckdb_tables() "
                                      "WHERE database_name = 'kept_answers' AND schema_name = 'ind'").fetchall()}
    con.execute("CREATE SCHEMA kb; CREATE SCHEMA ind")
    objects = con.sql("""SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'kb_file'
                         UNION ALL
                         SELECT schema_name, view_name FROM duckdb_views()
                         WHERE database_name = 'kb_file' AND NOT internal""").fetchall()
    for schema, name in objects:
        if schema == "ind" and name in answered:
            con.execute(f'CREATE VIEW ind."{name}" AS FROM kept_answers.ind."{name}"')
        elif schema in ("kb", "ind"):
            con.execute(f'CREATE VIEW {schema}."{name}" AS FROM kb_file.{schema}."{name}"')
