"""Alerts on failed runs: one line in DATA/alerts.log, and an e-mail when SMTP is configured.

An alert names the run, its job, the assets (and partitions) it was materialising and the
reason (the first line of each failed step's error). Error texts of this project never hold
an identity code or a key; as a second guard anything shaped like an identity code is
masked before the alert leaves the process. E-mail settings come from the environment:
TYOKYKY_SMTP_HOST, TYOKYKY_SMTP_PORT (default 25), TYOKYKY_ALERT_FROM, TYOKYKY_ALERT_TO
(comma-separated). A failed e-mail never loses the alert: the line is written first.
"""
from __future__ import annotations

import datetime
import os
import re
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

ALERT_LOG = "alerts.log"
#: a Finnish identity code (any century sign), as text anywhere in a message
IDENTITY_CODE_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{6}[-+A-FU-Ya-fu-y]\d{3}[0-9A-Ya-y](?![0-9A-Za-z])")
MASK = "[identity code removed]"


@dataclass(frozen=True)
class Alert:
    run_id: str
    job: str
    assets: list[str]
    partitions: str
    reasons: list[str]

    def line(self, at: datetime.datetime) -> str:
        where = ", ".join(self.assets) or "(no assets)"
        if self.partitions:
            where += f" [{self.partitions}]"
        return mask(f"{at:%Y-%m-%dT%H:%M:%SZ} run {self.run_id} ({self.job}) failed: assets {where}; "
                    f"reason: {' | '.join(self.reasons) or 'unknown'}")


def mask(text: str) -> str:
    return IDENTITY_CODE_LIKE.sub(MASK, text)


def first_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def from_failure(instance, run, step_failures: list, failure_message: str | None) -> Alert:
    """An alert from a failed DagsterRun: its failed steps, and the assets those steps were to
    materialise (from the run's planned materialisations; public event fields only)."""
    from dagster import DagsterEventType

    reasons, failed_steps = [], set()
    for ev in step_failures:
        data = ev.step_failure_data
        user = data.user_failure_data if data else None
        text = (user.description if user and user.description else None) or (data.error.message if data and data.error else "")
        reasons.append(f"{ev.step_key}: {first_line(text)}")
        failed_steps.add(ev.step_key)
    if not reasons:
        reasons.append(first_line(failure_message))
    planned = [r.event_log_entry.dagster_event for r in instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records]
    assets = sorted({ev.asset_key.to_user_string() for ev in planned
                     if ev.asset_key and (not failed_steps or ev.step_key in failed_steps)})
    tags = run.tags
    partitions = tags.get("dagster/partition") or "..".join(
        filter(None, [tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")]))
    return Alert(run.run_id, run.job_name, assets, partitions, reasons)


def smtp_settings(env=os.environ) -> dict | None:
    host = env.get("TYOKYKY_SMTP_HOST")
    if not host:
        return None
    return {"host": host, "port": int(env.get("TYOKYKY_SMTP_PORT") or 25),
            "from": env.get("TYOKYKY_ALERT_FROM") or "tyokyky@localhost",
            "to": [a.strip() for a in (env.get("TYOKYKY_ALERT_TO") or "").split(",") if a.strip()]}


def send_email(alert: Alert, line: str, smtp: dict) -> None:
    msg = EmailMessage()
    msg["Subject"] = mask(f"[tyokyky] run failed: {alert.job} {', '.join(alert.assets)}".strip())
    msg["From"] = smtp["from"]
    msg["To"] = ", ".join(smtp["to"])
    msg.set_content(f"{line}\n\nSee the run in the Dagster UI: /runs/{alert.run_id}\n")
    with smtplib.SMTP(smtp["host"], smtp["port"], timeout=30) as s:
        s.send_message(msg)


def notify(data: Path, alert: Alert, env=os.environ) -> list[str]:
    """Append the alert line to DATA/alerts.log, then e-mail it; return what could not be done."""
    line = alert.line(datetime.datetime.now(datetime.timezone.utc))
    Path(data).mkdir(parents=True, exist_ok=True)
    with open(Path(data) / ALERT_LOG, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    smtp = smtp_settings(env)
    if smtp is None:
        return []
    if not smtp["to"]:
        return ["TYOKYKY_SMTP_HOST is set but TYOKYKY_ALERT_TO is empty: no e-mail sent"]
    try:
        send_email(alert, line, smtp)
    except (OSError, smtplib.SMTPException) as e:
        problem = f"alert e-mail to {smtp['host']}:{smtp['port']} failed: {first_line(str(e)) or type(e).__name__}"
        with open(Path(data) / ALERT_LOG, "a", encoding="utf-8") as f:
            f.write(mask(problem) + "\n")
        return [problem]
    return []
