"""What is new in the landing zone, as Dagster run requests (shared by sensor and schedule)."""
from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, RunRequest

from assets import landing, staging
from pipelines.settings import Settings
from schemas import load_contracts

REPORT_KEY = AssetKey("steering_report")


@dataclass
class Pending:
    new_partitions: dict[str, list[str]]   # dynamic partitions definition name -> keys to add
    stage_requests: list[RunRequest]
    changed: list[str]                     # "partner/period" of every new or changed delivery


def pending(settings: Settings, existing: dict[str, set[str]]) -> Pending:
    """New or changed deliveries (by content hash against the last attempt), without the key."""
    contracts = load_contracts()
    deliveries, _ = landing.scan(settings.landing, contracts, settings.landing_hashes)
    new: dict[str, list[str]] = {}
    requests, changed = [], []
    for d in deliveries:
        name = f"{d.partner}_deliveries"
        if d.period not in existing.get(name, set()):
            new.setdefault(name, []).append(d.period)
        last = staging.read_state(settings.staging, d.partner, d.period)["last_attempt"]
        if last and last["content_sha256"] == d.content_sha256 and last["file"] == d.file_name:
            continue
        changed.append(f"{d.partner}/{d.period}")
        requests.append(RunRequest(
            run_key=f"{d.partner}/{d.period}/{d.content_sha256[:16]}", job_name=f"stage_{d.partner}",
            partition_key=d.period, tags={"tyokyky/partner": d.partner, "tyokyky/period": d.period}))
    return Pending(new, requests, changed)


def build_request(run_key: str | None) -> RunRequest:
    """Rebuild knowledge base, indicators and report (queued after the staging runs)."""
    return RunRequest(run_key=run_key, job_name="build_knowledge_base", tags={"tyokyky/step": "build"})
