"""The contract views' answers of a build, kept beside its knowledge base for the report.

The build evaluates every contract view once on the finished file, opened read-only, before it
swaps the file in (:func:`pipelines.knowledge_base.views_answer_as_opened`). The steering report
reads most of the same views moments later, and evaluating them again was half of its time at
1 M persons (1.3–1.8 s: the impact views and the cost savings read every TTK unit and payment).
So the build keeps the answers as Parquet in ``<kb>.view_answers/``, stamped with the file they
came from (inode, size, modification time and ``kb.build_info.built_at``), and the report reads
them through :func:`connect`, a read-only connection in which each kept answer stands in for its
view. A file the stamp does not match (another build, a rekeyed or restored file) gets no
answers: the report then evaluates the views itself, as evaluators always do.

The answers are aggregates of the contract views: no pseudonym, nothing a report does not show.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.casting import lit

STAMP = "stamp.json"


def folder_of(kb_path: Path) -> Path:
    return kb_path.parent / f"{kb_path.stem}.view_answers"


def _stamp(kb_path: Path, built_at) -> dict:
    s = kb_path.stat()
    return {"inode": s.st_ino, "size": s.st_size, "mtime_ns": s.st_mtime_ns, "built_at": str(built_at)}


def _built_at(con: duckdb.DuckDBPyConnection):
    return con.sql("SELECT built_at FROM kb.build_info").fetchall()[0][0]


def prepare(building: Path, target: Path, answers: dict[str, pa.Table], built_at) -> Path:
    """Write the answers of the file ``building`` (to be swapped in as ``target``) into a fresh
    folder beside it; :func:`swap_in` puts it in place once the file is. Returns the folder."""
    final = folder_of(target)
    _clear_leftovers(final)
    fresh = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    fresh.mkdir(parents=True)
    for view, table in answers.items():
        pq.write_table(table, fresh / f"{view}.parquet")
    (fresh / STAMP).write_text(json.dumps(_stamp(building, built_at)))
    return fresh


def swap_in(fresh: Path, target: Path) -> None:
    """The prepared answers replace the previous build's (whose stamp no longer matches anyway).
    The knowledge base is in place already: if this fails, the report finds no answers and
    evaluates the views, and the next build clears what is left."""
    final = folder_of(target)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    try:
        if final.exists():
            final.rename(old)
        fresh.rename(final)
    except OSError:
        return
    shutil.rmtree(old, ignore_errors=True)


def _clear_leftovers(final: Path) -> None:
    """What a stopped build left beside the answers (one build at a time holds the data folder)."""
    for leftover in final.parent.glob(f".{final.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)


def load(kb_path: Path, con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """The kept answers of the file ``kb_path`` (open as ``con``), or none if they are of another file."""
    folder = folder_of(kb_path)
    try:
        stamp = json.loads((folder / STAMP).read_text())
        if stamp != _stamp(kb_path, _built_at(con)):
            return {}
        return {f.stem: pq.read_table(f) for f in folder.glob("*.parquet")}
    except (OSError, ValueError, duckdb.Error, pa.ArrowException):  # none, or unreadable: no answers
        return {}


def connect(kb_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only view of the knowledge base ``kb_path`` for the report: with its kept answers, an
    in-memory database whose ``kb`` and ``ind`` objects are those of the file (views over it) but for
    the kept views, which are their answers; without, the file itself opened read-only."""
    direct = duckdb.connect(str(kb_path), read_only=True)
    answers = load(kb_path, direct)
    if not answers:
        return direct
    direct.close()
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {lit(str(kb_path))} AS kb_file (READ_ONLY)")
        con.execute("CREATE SCHEMA kb; CREATE SCHEMA ind")
        objects = con.sql("""SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'kb_file'
                             UNION ALL
                             SELECT schema_name, view_name FROM duckdb_views()
                             WHERE database_name = 'kb_file' AND NOT internal""").fetchall()
        for schema, name in objects:
            if schema == "ind" and name in answers:
                con.register("answer", answers[name])
                con.execute(f'CREATE TABLE ind."{name}" AS FROM answer')
                con.unregister("answer")
            elif schema in ("kb", "ind"):
                con.execute(f'CREATE VIEW {schema}."{name}" AS FROM kb_file.{schema}."{name}"')
    except BaseException:
        con.close()
        raise
    return con
