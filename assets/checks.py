"""Each partner's checks, computed from the contracts (GX inside) on the periods staged in a run."""

import json
from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSeverity

from assets.names import CONTRACT_CHECK, WARNINGS_CHECK, staging_key
from pipelines import quality, staging, timing
from schemas import Contract


def contract_result(staging_dir: Path, contract: Contract, periods: list[str]) -> AssetCheckResult:
    """Blocking: the staged rows of ``periods`` keep the contract (GX on a repeatable sample)."""
    with timing.stage("checks"):
        passed, failures, checked, total = quality.check_contract(staging_dir, contract, periods)
    return AssetCheckResult(asset_key=staging_key(contract.partner), check_name=CONTRACT_CHECK, passed=passed,
                            severity=AssetCheckSeverity.ERROR,
                            metadata={"periods_checked": len(periods), "rows_checked": checked, "rows_staged": total,
                                      "failed_expectations": json.dumps(failures)})


def warnings_result(staging_dir: Path, contract: Contract, periods: list[str]) -> AssetCheckResult:
    """Warning: overlaps, implausible birth years and a high quarantine share in ``periods``."""
    with timing.stage("checks"):
        found = quality.warnings(contract, staging_dir, periods)
    high_quarantine = []
    for p in periods:
        last = staging.read_state(staging_dir, contract.partner, p)["last_attempt"] or {}
        if last.get("rows_read") and last["rows_quarantined"] / last["rows_read"] > quality.QUARANTINE_WARN_SHARE:
            high_quarantine.append(p)
    found["periods_with_high_quarantine_share"] = len(high_quarantine)
    return AssetCheckResult(asset_key=staging_key(contract.partner), check_name=WARNINGS_CHECK,
                            passed=not any(found.values()), severity=AssetCheckSeverity.WARN,
                            metadata={**found, "periods_checked": len(periods),
                                      "high_quarantine_periods": ", ".join(high_quarantine)})
