"""What is new in the landing zone, as Dagster run requests (shared by sensor and schedule)."""
from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, RunRequest

from pipelines import landing, staging
from pipelines.settings import Settings
from schemas import load_contracts

REPORT_KEY = AssetKey("steering_report")


@dataclass
class Pending:
    new_partitions: dict[str, list[str]]   # dynamic partitions definition name -> keys to add
    stage_requests: list[RunRequest]
    changed: list[str]                     # "partner/period" of every new or changed delivery


def existing_partitions(instance) -> dict[str, set[str]]:
    """The delivery periods each partner's dynamic partitions already hold."""
    return {f"{p}_deliveries": set(instance.get_dynamic_partitions(f"{p}_deliveries")) for p in load_contracts()}


def missing_partitions(deliveries: list, existing: dict[str, set[str]]) -> dict[str, list[str]]:
    """Dynamic partitions to add for the deliveries: partitions definition name -> periods."""
    missing: dict[str, list[str]] = {}
    for d in deliveries:
        name = f"{d.partner}_deliveries"
        if d.period not in existing.get(name, set()) and d.period not in missing.get(name, []):
            missing.setdefault(name, []).append(d.period)
    return {name: sorted(periods) for name, periods in missing.items()}


def add_missing_partitions(instance, deliveries: list) -> None:
    for name, periods in missing_partitions(deliveries, existing_partitions(instance)).items():
        instance.add_dynamic_partitions(name, periods)


def periods_to_stage(settings: Settings, deliveries: list, contracts: dict, key) -> dict[str, list[str]]:
    """Per partner, the periods whose delivery is new or changed (content, contract or key)."""
    todo: dict[str, list[str]] = {}
    for d in deliveries:
        if staging.needs_staging(settings.staging, d, contracts[d.partner], key):
            todo.setdefault(d.partner, []).append(d.period)
    return todo


def pending(settings: Settings, existing: dict[str, set[str]]) -> Pending:
    """New or changed deliveries (by content hash against the last attempt), without the key."""
    contracts = load_contracts()
    deliveries, _ = landing.scan(settings.landing, contracts, settings.landing_hashes)
    requests, changed = [], []
    for d in deliveries:
        last = staging.read_state(settings.staging, d.partner, d.period)["last_attempt"]
        if last and last["content_sha256"] == d.content_sha256 and last["file"] == d.file_name:
            continue
        changed.append(f"{d.partner}/{d.period}")
        requests.append(RunRequest(
            run_key=f"{d.partner}/{d.period}/{d.content_sha256[:16]}", job_name=f"stage_{d.partner}",
            partition_key=d.period, tags={"tyokyky/partner": d.partner, "tyokyky/period": d.period}))
    return Pending(missing_partitions(deliveries, existing), requests, changed)


def build_request(run_key: str | None) -> RunRequest:
    """Rebuild knowledge base, indicators and report (queued after the staging runs)."""
    return RunRequest(run_key=run_key, job_name="build_knowledge_base", tags={"tyokyky/step": "build"})
