"""Materialise every asset through Dagster, in process (the ``tyokyky run`` command).

One run, as the sensor and the schedule request it (assets/automation.py): the new or
changed deliveries of every partner over a range of delivery periods, then knowledge base,
indicators and report. The in-process executor avoids a subprocess and a fresh import of GX.

The whole run holds the data directory (one writer at a time) and starts by freeing what
a killed run left behind. Whatever stops it becomes one line (BuildStopped).
"""
from __future__ import annotations

import errno
import importlib
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml
from dagster import (
    DagsterEventType,
    DagsterExecutionStepExecutionError,
    DagsterInstance,
    Failure,
    RunsFilter,
    materialize,
)

from assets.automation import add_new_periods, known_periods, plan
from assets.definitions import ASSETS
from assets.instance import InstanceError, open_instance
from assets.recovery import SlotHeld, check_build_slot, recover
from assets.resources import TyokykyResource
from pipelines import landing, staging
from pipelines.data_lock import PROCESS_TAG, DataDirBusy, data_lock, process_token
from pipelines.knowledge_base import KnowledgeBaseError, load_parameters
from pipelines.settings import Settings
from pseudonymize import KeyFileError, load_key_file
from pseudonymize.redact import redact
from schemas import load_contracts

ATTEMPT_TAG = "tyokyky/attempt"  # finds this call's run in the instance
PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
# The command line prints its own one-line summary; every event stays in Dagster's event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class BuildStopped(Exception):
    """Something stops the build; the message is the one line the user sees."""


#: errors whose message is already the one line for the user
ONE_LINE_ERRORS = (KnowledgeBaseError, staging.StagingError, KeyFileError, BuildStopped, DataDirBusy, SlotHeld,
                   landing.LandingError)


def os_error_line(e: OSError, what: str) -> str:
    """One line for a file-system error while doing ``what``: the file, the cause, the remedy."""
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"no space left on the device while {what}{where}: free some space and run again"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write while {what}{where}: {e.strerror}; make the folder writable or point "
                "--data / DAGSTER_HOME elsewhere")
    return f"{e.strerror or type(e).__name__} while {what}{where}: check the path and run again"


def error_line(e: BaseException, what: str) -> str:
    """One line for whatever stopped the build (identity codes redacted, first line only)."""
    if isinstance(e, ONE_LINE_ERRORS):
        text = str(e)
    elif isinstance(e, OSError):
        text = os_error_line(e, what)
    elif isinstance(e, duckdb.IOException):
        text = f"cannot write the knowledge base while {what}: {str(e).splitlines()[0]}"
    else:
        text = (f"{type(e).__name__} while {what}: {str(e).splitlines()[0] if str(e) else 'no message'} "
                "(see the run in the Dagster UI: make ui)")
    return redact(text.replace("\n", " "))[:500]


@dataclass
class RunSummary:
    staged: dict[str, list[str]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kb_path: Path | None = None
    report: Path | None = None


def instance_for(settings: Settings) -> DagsterInstance:
    """DAGSTER_HOME when set; else DATA/.dagster with the project's dagster.yaml."""
    home = settings.dagster_home
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "dagster.yaml").exists() and PROJECT_DAGSTER_YAML.exists():
            shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
        probe = home / ".tyokyky-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BuildStopped(os_error_line(e, f"preparing the Dagster instance in {home} (DAGSTER_HOME)")) from None
    try:
        return open_instance(home)
    except InstanceError as e:  # e.g. the PostgreSQL of `tyokyky serve` is down
        raise BuildStopped(str(e)) from None


def _materialize(selection, resource, instance, **kwargs):
    attempt = uuid.uuid4().hex
    tags = {PROCESS_TAG: process_token(), ATTEMPT_TAG: attempt, **kwargs.pop("tags", {})}
    what = "running " + ", ".join(k.to_user_string() for k in selection)
    try:
        return materialize(ASSETS, selection=selection, resources={"tyokyky": resource},
                           instance=instance, run_config=QUIET, tags=tags, **kwargs)
    except DagsterExecutionStepExecutionError as e:
        raise BuildStopped(step_error_line(e.user_exception, f"running step {e.step_key}")) from None
    except Exception as e:  # raised as is by in-process execution
        if type(e).__name__ == "DagsterMaxRetriesExceededError":  # retried, and failed each time: say why
            raise BuildStopped(last_step_failure(instance, attempt, what) or step_error_line(e, what)) from None
        if type(e).__name__ == "DagsterAssetCheckFailedError":  # a blocking check stopped the run
            raise BuildStopped(failed_checks_line(instance, attempt) or step_error_line(e, what)) from None
        raise BuildStopped(step_error_line(e, what)) from None


def _events(instance: DagsterInstance, attempt: str, kind: DagsterEventType) -> list:
    """Events of one kind of the run made by this call of ``_materialize`` (found by its tag)."""
    runs = instance.get_runs(RunsFilter(tags={ATTEMPT_TAG: attempt}), limit=1)
    return instance.all_logs(runs[0].run_id, of_type=kind) if runs else []


def failed_checks_line(instance: DagsterInstance, attempt: str) -> str | None:
    """Which blocking checks of our run failed, from Dagster's event log."""
    failed = sorted({f"{ev.asset_key.path[-1]}: {ev.check_name}"
                     for e in _events(instance, attempt, DagsterEventType.ASSET_CHECK_EVALUATION)
                     if not (ev := e.dagster_event.event_specific_data).passed and ev.severity.value == "ERROR"})
    if not failed:
        return None
    return ("blocking data-quality check(s) failed: " + ", ".join(failed)
            + "; the previous knowledge base is kept (see the checks in the Dagster UI)")


def last_step_failure(instance: DagsterInstance, attempt: str, what: str) -> str | None:
    """The error of the last failed step of our run, from Dagster's event log (the exception that
    ends a run whose retries are used up names only the retry limit)."""
    failures = _events(instance, attempt, DagsterEventType.STEP_FAILURE)
    if not failures:
        return None
    retries = _events(instance, attempt, DagsterEventType.STEP_UP_FOR_RETRY)
    error = failures[-1].dagster_event.event_specific_data.error
    while error is not None and error.cause is not None:  # to the user's own exception
        error = error.cause
    if error is None:
        return None
    message = (error.message or error.cls_name).strip().splitlines()[0]
    step = failures[-1].step_key
    tries = 1 + sum(r.step_key == step for r in retries)
    return redact(f"{f'running step {step}' if step else what} failed {tries} times: {message}")[:500]


def step_error_line(e: BaseException, what: str) -> str:
    """One line for a failed step; a Failure that is not retried (bad data, setup, a full disk)
    is told by the error it wraps."""
    if isinstance(e, Failure) and not e.allow_retries:
        if isinstance(e.__cause__, Exception):
            return error_line(e.__cause__, what)
        return redact(e.description or "")
    return error_line(e, what)


def check_parameters(settings: Settings) -> None:
    """A bad parameters file stops the run before anything is written."""
    if settings.parameters_file is None:
        return
    try:
        load_parameters(settings.parameters_file)
    except KnowledgeBaseError as e:
        raise BuildStopped(str(e)) from None
    except OSError as e:
        raise BuildStopped(f"parameters file {settings.parameters_file} cannot be read ({e.strerror}): "
                           "pass --parameters FILE or set TYOKYKY_PARAMETERS") from None
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise BuildStopped(f"parameters file {settings.parameters_file} is not valid YAML of sections and "
                           f"values{where}: see pipelines/parameters.yaml for the format") from None


REPORT_MODULE = "reports.steering"  # imported by the report step, in this process (the in-process executor)


def import_in_background(module: str) -> threading.Thread:
    """Import ``module`` in a thread while the build runs. The report step's import of matplotlib
    is about 0.4 s of a monthly build, and the steps before it spend their time in DuckDB and
    pyarrow, which release the GIL. A failure is left to the step's own import to report."""
    def load() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: S110 (the report step imports it again and says what fails)
            pass
    thread = threading.Thread(target=load, name=f"import {module}", daemon=True)
    thread.start()
    return thread


def run(settings: Settings, log=print) -> RunSummary:
    """Stage what changed, then rebuild; raise BuildStopped with one line on what stops it."""
    check_parameters(settings)
    try:
        key = load_key_file(settings.key_file)
    except KeyFileError as e:
        raise BuildStopped(str(e)) from None
    except OSError as e:
        raise BuildStopped(f"key file {settings.key_file} cannot be read ({e.strerror}): check it and its "
                           "permissions, or pass another with --key-file") from None
    try:
        with data_lock(settings.data, "tyokyky run"):
            return _run_locked(settings, key, log)
    except BuildStopped:
        raise
    except Exception as e:
        raise BuildStopped(error_line(e, f"building into {settings.data}")) from None


def _run_locked(settings: Settings, key, log) -> RunSummary:
    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    instance = instance_for(settings)
    recovered = recover(instance, settings)
    try:
        deliveries, scan_warnings = landing.scan(settings.landing, load_contracts(), settings.landing_hashes)
    except landing.LandingError as e:
        raise BuildStopped(str(e)) from None
    except OSError as e:
        raise BuildStopped(f"landing zone {settings.landing} cannot be read ({e.strerror}): check the path") from None
    try:
        staging.check_key(settings.staging, key)
    except staging.StagingError as e:
        raise BuildStopped(str(e)) from None

    summary = RunSummary(warnings=[f"after an interrupted run: {n}" for n in recovered])
    summary.warnings += [str(w) for w in scan_warnings]
    summary.warnings += withdrawn_deliveries(settings, deliveries)
    resource = TyokykyResource.from_settings(settings)
    p = plan(settings, deliveries, load_contracts(), set(known_periods(instance)), key)
    known = add_new_periods(instance, p)
    for partner, todo in sorted(p.changed.items()):
        log(f"staging {partner}: {len(todo)} deliver{'y' if len(todo) == 1 else 'ies'}")
    summary.staged = dict(p.changed)
    log("building knowledge base, indicators and report")
    check_build_slot(instance)
    import_in_background(REPORT_MODULE)
    _materialize(p.selection(), resource, instance, tags=p.tags(known))
    for d in deliveries:
        last = staging.read_state(settings.staging, d.partner, d.period)["last_attempt"]
        if last and last["status"] == "rejected":
            summary.rejected.append(f"{d.partner} {d.period}: {last['reason']}")
    summary.kb_path = settings.kb_path
    reports = sorted(settings.reports.glob("ohjausryhmaraportti_*.pdf"), key=lambda p: p.stat().st_mtime)
    summary.report = reports[-1] if reports else None
    return summary


def withdrawn_deliveries(settings: Settings, deliveries: list) -> list[str]:
    """Loaded deliveries whose folder is gone from the landing zone: their rows stay loaded
    (files there may be archived after loading; nothing is dropped without a decision),
    and each is reported until it is delivered again or its staging is removed."""
    present = {(d.partner, d.period) for d in deliveries}
    gone = []
    for state in staging.delivery_states(settings.staging):
        partner, period = state["dir"].parent.name, state["dir"].name
        if (partner, period) not in present and state.get("loaded"):
            gone.append(f"{partner} {period}: the delivery folder is no longer in the landing zone; its loaded "
                        f"rows stay in the knowledge base (to drop them, remove {state['dir']} and run again)")
    return gone
