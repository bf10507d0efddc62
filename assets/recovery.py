"""After a crash (``kill -9`` at any point): free what the dead run held.

Called while holding the data-directory lock, so no live tyokyky process is writing.
A run whose process is gone is marked failed in Dagster, and the concurrency slots it
held (pool ``duckdb_writer``) are freed: otherwise the next knowledge-base step waits
for that slot forever. Half-written files are finished or removed (staging) or removed
(knowledge-base build); the knowledge base in place was never touched by the dead run.
"""
from __future__ import annotations

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from pipelines import rekey, staging, view_answers
from pipelines.data_lock import PROCESS_TAG, process_alive
from pipelines.settings import Settings

UNFINISHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


class SlotHeld(Exception):
    """A live run outside this process holds the build slot (one line for the user)."""


def dead_runs(instance: DagsterInstance) -> list:
    """Unfinished runs whose process is known and gone."""
    runs = instance.get_runs(filters=RunsFilter(statuses=UNFINISHED))
    return [r for r in runs if PROCESS_TAG in r.tags and not process_alive(r.tags[PROCESS_TAG])]


def recover(instance: DagsterInstance, settings: Settings) -> list[str]:
    """Mark dead runs failed, free their slots and unfinished files; what was done, as notes."""
    notes = []
    for run in dead_runs(instance):
        instance.report_run_failed(run, "its process is gone (killed or crashed); marked failed by a later run")
        notes.append(f"run {run.run_id[:8]} of a process that is gone was marked failed")
    storage = instance.event_log_storage
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            notes.append(f"freed the concurrency slots of finished run {run_id[:8]}")
    building = settings.kb_path.with_name(settings.kb_path.name + ".building")
    for leftover in (building, building.with_name(building.name + ".wal"), *view_answers.leftovers(settings.kb_path)):
        if leftover.exists():
            leftover.unlink()
            notes.append(f"removed {leftover.name} of an interrupted knowledge-base build")
    notes += rekey.recover(settings.data)  # a key rotation cut short: finished or dropped whole
    notes += staging.recover(settings.staging)
    return notes


def check_build_slot(instance: DagsterInstance) -> None:
    """Before the build step: a slot held by a live run elsewhere would make it wait
    forever while this process holds the data directory; say so instead."""
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            who = run.tags.get(PROCESS_TAG, "an unknown process")
            raise SlotHeld(f"the knowledge-base build slot is held by Dagster run {run_id[:8]} ({who}); "
                           "wait for that run to finish or terminate it in the Dagster UI, then run again")
