"""Alerts on failed runs: DATA/alerts.log and an e-mail to a local SMTP server started here."""
from __future__ import annotations

import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller
from dagster import DagsterInstance, build_run_status_sensor_context, materialize

from assets import alerts
from assets.definitions import alert_on_run_failure
from assets.resources import TyokykyResource
from assets.warehouse import knowledge_base_and_indicators
from pseudonymize import load_key_file

CODE = "010180-123A"   # synthetic, shaped like an identity code


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture
def failed_build(tmp_path, key_file):
    """A real failed run: the knowledge-base build stops on a broken parameters file."""
    (tmp_path / "data").mkdir()
    params = tmp_path / "data" / "parameters.yaml"
    params.write_text("no_such_section: {}\n")
    resource = TyokykyResource(landing=str(tmp_path / "landing"), data=str(tmp_path / "data"),
                               key_file=str(key_file), parameters_file=str(params))
    instance = DagsterInstance.ephemeral()
    result = materialize([knowledge_base_and_indicators], resources={"tyokyky": resource}, instance=instance,
                         raise_on_error=False)
    assert not result.success
    context = build_run_status_sensor_context(
        sensor_name="alert_on_run_failure", dagster_event=result.get_run_failure_event(),
        dagster_instance=instance, dagster_run=result.dagster_run).for_run_failure()
    yield {"context": context, "run": result.dagster_run, "data": tmp_path / "data"}
    instance.dispose()


def test_failed_run_writes_an_alert_line_and_sends_an_email(failed_build, smtp, monkeypatch, key_file):
    port, inbox = smtp
    monkeypatch.setenv("TYOKYKY_DATA", str(failed_build["data"]))
    monkeypatch.setenv("TYOKYKY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TYOKYKY_SMTP_PORT", str(port))
    monkeypatch.setenv("TYOKYKY_ALERT_FROM", "tyokyky@example.org")
    monkeypatch.setenv("TYOKYKY_ALERT_TO", "analyst@example.org, oncall@example.org")
    alert_on_run_failure(failed_build["context"])

    run_id = failed_build["run"].run_id
    [line] = (failed_build["data"] / "alerts.log").read_text().splitlines()
    assert f"run {run_id} (__ephemeral_asset_job__) failed: assets indicators, knowledge_base;" in line
    assert "reason: knowledge_base_and_indicators: parameters file" in line and "unknown section" in line
    [(sender, recipients, raw)] = inbox.messages
    assert sender == "tyokyky@example.org"
    assert recipients == ["analyst@example.org", "oncall@example.org"]
    message = email.message_from_string(raw, policy=email.policy.default)
    assert message["Subject"].strip() == "[tyokyky] run failed: __ephemeral_asset_job__ indicators, knowledge_base"
    body = message.get_content()
    assert line in body and f"/runs/{run_id}" in body
    secret = load_key_file(key_file)
    for text in (line, body):
        assert secret.short_fingerprint not in text and key_file.read_text().strip() not in text


def test_alert_without_smtp_only_writes_the_line(failed_build, monkeypatch):
    monkeypatch.setenv("TYOKYKY_DATA", str(failed_build["data"]))
    monkeypatch.delenv("TYOKYKY_SMTP_HOST", raising=False)
    alert_on_run_failure(failed_build["context"])
    alert_on_run_failure(failed_build["context"])
    assert len((failed_build["data"] / "alerts.log").read_text().splitlines()) == 2


def test_unreachable_smtp_keeps_the_alert_and_says_so(failed_build, monkeypatch):
    port = free_port()   # nobody listens there
    monkeypatch.setenv("TYOKYKY_DATA", str(failed_build["data"]))
    monkeypatch.setenv("TYOKYKY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TYOKYKY_SMTP_PORT", str(port))
    monkeypatch.setenv("TYOKYKY_ALERT_TO", "analyst@example.org")
    alert_on_run_failure(failed_build["context"])   # does not raise: the sensor must not fail its tick
    first, second = (failed_build["data"] / "alerts.log").read_text().splitlines()
    assert f"run {failed_build['run'].run_id}" in first
    assert second.startswith(f"alert e-mail to 127.0.0.1:{port} failed")


def test_identity_codes_are_masked_in_alerts(tmp_path, smtp):
    port, inbox = smtp
    alert = alerts.Alert("r1", "stage_te", ["staging/te"], "2023-01",
                         [f"staging_te: unexpected value {CODE} in line 3", f"lower {CODE.lower()}, 2023 sign 010105A123B"])
    env = {"TYOKYKY_SMTP_HOST": "127.0.0.1", "TYOKYKY_SMTP_PORT": str(port), "TYOKYKY_ALERT_TO": "a@example.org"}
    assert alerts.notify(tmp_path, alert, env) == []
    message = email.message_from_string(inbox.messages[0][2], policy=email.policy.default)
    text = (tmp_path / "alerts.log").read_text() + message["Subject"] + message.get_content()
    assert CODE not in text and CODE.lower() not in text and "010105A123B" not in text
    assert text.count(alerts.MASK) == 6   # three codes, in the log line and in the e-mail body
    assert "assets staging/te [2023-01]" in text
    # dates, run ids and row counts are not mistaken for codes
    assert alerts.mask("2023-01-31 run 0a1b2c3d rows 123456") == "2023-01-31 run 0a1b2c3d rows 123456"
