"""The one run that stages what is new in the landing zone and rebuilds.

The command line, the sensor and the schedule ask for the same thing: the ``build`` job over
the range of delivery periods with a new or changed delivery, for the partners that have one
(each stages only what changed in that range; unchanged periods are skipped by content hash),
followed in the same run by knowledge base, indicators and report. When nothing is to be
staged, the command line rebuilds alone; the sensor and the schedule skip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256

from dagster import AssetKey, RunRequest

from assets.names import IND_KEY, KB_KEY, PERIODS, RANGE_END_TAG, RANGE_START_TAG, REPORT_KEY, STEP_TAG, staging_key
from pipelines import staging
from pipelines.settings import Settings
from schemas.contract import Contract

REBUILD = [KB_KEY, IND_KEY, REPORT_KEY]


@dataclass
class Plan:
    """What one build run does: which partners' periods it stages."""

    changed: dict[str, list[str]] = field(default_factory=dict)   # partner -> periods, new or changed
    new_periods: list[str] = field(default_factory=list)         # periods the instance does not know yet
    versions: list[str] = field(default_factory=list)            # partner/period/content of each change

    @property
    def periods(self) -> set[str]:
        return {p for periods in self.changed.values() for p in periods}

    def selection(self) -> list[AssetKey]:
        return [staging_key(p) for p in sorted(self.changed)] + REBUILD

    def tags(self, known: list[str]) -> dict[str, str]:
        """The run's tags: the partition range (in the instance's order of ``known`` periods)
        spanning every changed period, and the tag the run queue limits."""
        tags = {STEP_TAG: "build"}
        if self.changed:
            order = {p: i for i, p in enumerate(known)}
            periods = sorted(self.periods, key=order.__getitem__)
            tags.update({RANGE_START_TAG: periods[0], RANGE_END_TAG: periods[-1]})
        return tags


def plan(settings: Settings, deliveries: list, contracts: dict[str, Contract], known: set[str], key=None) -> Plan:
    """The plan for the deliveries now in the landing zone. ``key`` None (the sensor, the
    schedule) compares content and contract only; the command line also sees a new key."""
    out = Plan()
    for d in deliveries:
        if staging.needs_staging(settings.staging, d, contracts[d.partner], key):
            out.changed.setdefault(d.partner, []).append(d.period)
            out.versions.append(f"{d.partner}/{d.period}/{d.content_sha256}")
    out.new_periods = sorted({d.period for d in deliveries} - set(known))
    return out


def known_periods(instance) -> list[str]:
    """The delivery periods the instance knows, in its order (the order of partition ranges)."""
    return list(instance.get_dynamic_partitions(PERIODS.name))


def add_new_periods(instance, p: Plan) -> list[str]:
    """Add the plan's new periods to the instance; return every known period in order."""
    if p.new_periods:
        instance.add_dynamic_partitions(PERIODS.name, p.new_periods)
    return known_periods(instance)


def run_request(p: Plan, known: list[str]) -> RunRequest:
    """The plan as a run request of the ``build`` job; ``known`` are the periods in the
    instance's order once the plan's new periods are added. The run key names the delivery
    versions, so a delivery sent again with other content is a new run."""
    digest = sha256("|".join(sorted(p.versions)).encode()).hexdigest()[:16]
    return RunRequest(run_key=f"build/{digest}", asset_selection=p.selection(), tags=p.tags(known))
