"""Retries: a passing file-system fault is retried with back-off; bad data or setup is not;
a build waits while staging runs are queued or running."""
from __future__ import annotations

import errno

import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from assets.resources import TyokykyResource
from assets.run_policy import FILE_SYSTEM_RETRY
from assets.warehouse import knowledge_base_and_indicators
from pipelines import knowledge_base


@pytest.fixture
def resource(tmp_path, key_file):
    return TyokykyResource(landing=str(tmp_path / "landing"), data=str(tmp_path / "data"), key_file=str(key_file))


def event_types(result) -> list[DagsterEventType]:
    return [e.event_type for e in result.all_events]


def test_a_step_that_fails_once_succeeds_on_retry(resource, monkeypatch):
    real_build, calls = knowledge_base.build, []

    def flaky_build(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error", "tyokyky.duckdb.new")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(knowledge_base, "build", flaky_build)
    with DagsterInstance.ephemeral() as instance:
        result = materialize([knowledge_base_and_indicators], resources={"tyokyky": resource}, instance=instance)
    assert result.success and len(calls) == 2
    assert event_types(result).count(DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert event_types(result).count(DagsterEventType.STEP_RESTARTED) == 1
    assert result.asset_materializations_for_node("knowledge_base_and_indicators")
    assert FILE_SYSTEM_RETRY.max_retries == 3 and FILE_SYSTEM_RETRY.backoff is not None


def test_a_failure_caused_by_bad_data_is_not_retried(resource, monkeypatch):
    calls = []

    def refusing_build(*args, **kwargs):
        calls.append(1)
        raise knowledge_base.KnowledgeBaseError("kb.clients has 2 duplicate pseudonyms; the build is not swapped in")

    monkeypatch.setattr(knowledge_base, "build", refusing_build)
    with DagsterInstance.ephemeral() as instance:
        result = materialize([knowledge_base_and_indicators], resources={"tyokyky": resource}, instance=instance,
                             raise_on_error=False)
    assert not result.success and len(calls) == 1
    assert DagsterEventType.STEP_UP_FOR_RETRY not in event_types(result)
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description == \
        "kb.clients has 2 duplicate pseudonyms; the build is not swapped in"


@pytest.mark.parametrize("error, tries", [
    (OSError(errno.EIO, "Input/output error"), 1 + FILE_SYSTEM_RETRY.max_retries),   # may pass: retried
    (OSError(errno.ENOSPC, "No space left on device"), 1),   # free space does not appear in seconds
], ids=["io_error_retried", "full_disk_not_retried"])
def test_a_persistent_file_system_fault(resource, monkeypatch, error, tries):
    calls = []

    def broken_disk(*args, **kwargs):
        calls.append(1)
        raise error

    monkeypatch.setattr(knowledge_base, "build", broken_disk)
    with DagsterInstance.ephemeral() as instance:
        result = materialize([knowledge_base_and_indicators], resources={"tyokyky": resource}, instance=instance,
                             raise_on_error=False)
    assert not result.success and len(calls) == tries


def test_run_names_the_error_after_the_retries(tmp_path, monkeypatch):
    """`tyokyky run` retries an I/O error, then says what it was, not only that retries ran out."""
    from pseudonymize import generate_secret_file
    from tests.conftest import build
    from tests.landing_writer import Landing, hetu
    from tyokyky.run import BuildStopped

    landing = Landing(tmp_path / "landing")
    landing.csv("te", "2022-12", [[hetu(1, 1, 1980, 123), "186", "01", "2020-01-01", "", "Järvenpää"]])
    key = generate_secret_file(tmp_path / "k.key")

    def broken_disk(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(knowledge_base, "build", broken_disk)
    with pytest.raises(BuildStopped, match=r"^running step knowledge_base_and_indicators failed 4 times: "
                                           r"OSError: \[Errno 5\] Input/output error$"):
        build(tmp_path / "landing", tmp_path / "data", key)
