"""Materialise every asset through Dagster, in process (the ``tyokyky run`` command).

One run per partner with new or changed deliveries (a single-run range over its
periods), then one run for knowledge base, indicators and report. The in-process
executor avoids a subprocess and a fresh import of GX per step.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Failure, materialize
from dagster._core.errors import DagsterExecutionStepExecutionError

from assets import landing, staging
from assets.knowledge_base import KnowledgeBaseError
from assets.partner_checks import PARTNER_CHECKS
from assets.partners import PARTNER_ASSETS
from assets.report import steering_report
from assets.run_policy import STEP_TAG, WAIT_TAG
from assets.warehouse import knowledge_base_and_indicators
from pipelines.automation import add_missing_partitions, periods_to_stage
from pipelines.instance_config import InstanceError, open_instance
from pipelines.resources import TyokykyResource
from pipelines.settings import Settings
from pseudonymize import KeyFileError, load_key_file
from schemas import load_contracts

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
ALL_ASSETS = [*PARTNER_ASSETS, knowledge_base_and_indicators, steering_report]
# The command line prints its own one-line summary; every event stays in Dagster's event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class BuildStopped(Exception):
    """Something stops the build; the message is the one line the user sees."""


@dataclass
class RunSummary:
    staged: dict[str, list[str]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kb_path: Path | None = None
    report: Path | None = None


def instance_for(settings: Settings) -> DagsterInstance:
    """DAGSTER_HOME when set; else DATA/.dagster with the project's dagster.yaml."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and PROJECT_DAGSTER_YAML.exists():
        shutil.copy(PROJECT_DAGSTER_YAML, home / "dagster.yaml")
    try:
        return open_instance(home)
    except InstanceError as e:  # e.g. the PostgreSQL of `tyokyky serve` is down
        raise BuildStopped(str(e)) from None


def _materialize(selection, resource, instance, **kwargs):
    try:
        return materialize([*ALL_ASSETS, *PARTNER_CHECKS], selection=selection, resources={"tyokyky": resource},
                           instance=instance, run_config=QUIET, **kwargs)
    except DagsterExecutionStepExecutionError as e:
        cause = e.user_exception
        if isinstance(cause, Failure) and not cause.allow_retries:  # bad data or setup, not retried
            raise BuildStopped(cause.description) from None
        if isinstance(cause, (KnowledgeBaseError, staging.StagingError, KeyFileError, BuildStopped)):
            raise BuildStopped(str(cause)) from None
        raise BuildStopped(f"{type(cause).__name__} in step {e.step_key}: {cause} "
                           f"(see the run in the Dagster UI: make ui)") from None


def run(settings: Settings, log=print) -> RunSummary:
    """Stage what changed, then rebuild; raise BuildStopped with one line on what stops it."""
    try:
        key = load_key_file(settings.key_file)
    except KeyFileError as e:
        raise BuildStopped(str(e)) from None
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

    logging.getLogger("dagster").setLevel(logging.WARNING)
    instance = instance_for(settings)
    resource = TyokykyResource.from_settings(settings)
    contracts = load_contracts()
    summary = RunSummary(warnings=scan_warnings)
    add_missing_partitions(instance, deliveries)
    for partner, todo in sorted(periods_to_stage(settings, deliveries, contracts, key).items()):
        keys = instance.get_dynamic_partitions(f"{partner}_deliveries")
        first, last = min(todo, key=keys.index), max(todo, key=keys.index)
        log(f"staging {partner}: {len(todo)} deliver{'y' if len(todo) == 1 else 'ies'}")
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        result = _materialize([AssetKey(["staging", partner])], resource, instance, tags=tags)
        summary.staged[partner] = todo
        for ev in result.get_asset_check_evaluations():
            if not ev.passed and ev.severity.value == "ERROR":
                summary.failed_checks.append(f"{partner}: {ev.check_name}")
    if summary.failed_checks:
        raise BuildStopped("blocking data-quality check(s) failed: " + ", ".join(summary.failed_checks)
                           + "; the previous knowledge base is kept (see the checks in the Dagster UI)")
    for d in deliveries:
        last = staging.read_state(settings.staging, d.partner, d.period)["last_attempt"]
        if last and last["status"] == "rejected":
            summary.rejected.append(f"{d.partner} {d.period}: {last['reason']}")
    log("building knowledge base, indicators and report")
    _materialize([AssetKey("knowledge_base"), AssetKey("indicators"), AssetKey("steering_report")],
                 resource, instance, tags={STEP_TAG: "build", WAIT_TAG: "no"})  # staged just above
    summary.kb_path = settings.kb_path
    reports = sorted(settings.reports.glob("ohjausryhmaraportti_*.pdf"), key=lambda p: p.stat().st_mtime)
    summary.report = reports[-1] if reports else None
    return summary
