"""Dagster asset checks per partner, generated from the contracts (GX inside)."""

import json

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, AssetCheckSeverity, asset_check

from assets.partners import partitions_for, partner_key
from assets.resources import TyokykyResource
from pipelines import quality
from schemas import Contract, load_contracts


def _periods(context: AssetCheckExecutionContext) -> list[str]:
    return list(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else []


def contract_check(contract: Contract) -> AssetChecksDefinition:
    @asset_check(asset=partner_key(contract.partner), name="contract", blocking=True,
                 partitions_def=partitions_for(contract.partner),
                 description=f"GX: staged {contract.partner} rows keep the contract (blocking).")
    def _check(context: AssetCheckExecutionContext, tyokyky: TyokykyResource) -> AssetCheckResult:
        passed, failures, checked, total = quality.check_contract(tyokyky.settings.staging, contract,
                                                                 _periods(context))
        return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.ERROR,
                                metadata={"rows_checked": checked, "rows_staged": total,
                                          "failed_expectations": json.dumps(failures)})
    return _check


def warning_check(contract: Contract) -> AssetChecksDefinition:
    @asset_check(asset=partner_key(contract.partner), name="quality_warnings", blocking=False,
                 partitions_def=partitions_for(contract.partner),
                 description=f"Softer {contract.partner} findings: overlaps, quarantine share, birth years.")
    def _check(context: AssetCheckExecutionContext, tyokyky: TyokykyResource) -> AssetCheckResult:
        staging = tyokyky.settings.staging
        periods = _periods(context)
        found = quality.warnings(contract, staging, periods)
        high_quarantine = []
        for p in periods:
            state = json.loads((staging / contract.partner / p / "delivery.json").read_text()) \
                if (staging / contract.partner / p / "delivery.json").exists() else {}
            last = state.get("last_attempt") or {}
            if last.get("rows_read") and last["rows_quarantined"] / last["rows_read"] > quality.QUARANTINE_WARN_SHARE:
                high_quarantine.append(p)
        found["periods_with_high_quarantine_share"] = len(high_quarantine)
        return AssetCheckResult(passed=not any(found.values()), severity=AssetCheckSeverity.WARN,
                                metadata={**found, "high_quarantine_periods": ", ".join(high_quarantine)})
    return _check


PARTNER_CHECKS = [f(c) for c in load_contracts().values() for f in (contract_check, warning_check)]
