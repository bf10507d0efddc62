"""How steps retry, fail and wait, and the run tags the production run queue limits.

* A step that touches the file system retries with exponential back-off: an NFS hiccup or a
  file locked for a moment pass; a second try costs little. A full disk, a read-only file system
  or a permission error does not pass in seconds: it fails at once with its one line.
* A failure caused by the data or the setup (a blocking contract check, pseudonyms of another
  key, a missing key file, a broken contract) is not retried: it fails at once with its one-line
  reason, because trying again cannot help.
* A knowledge-base build waits while staging runs are queued or running, so that a build
  queued with them (or launched by hand) never builds from half of a batch of deliveries.
  A staging run that has not moved for hours was left behind by a killed process (Dagster's
  default run launcher cannot tell), so it stops counting after STALE_AFTER_SECONDS.
  ``tyokyky run`` stages and builds in one process, one after the other: its build does not wait.
"""
from __future__ import annotations

import errno
import time
from contextlib import contextmanager

from dagster import Backoff, DagsterRunStatus, Failure, Jitter, RetryPolicy, RetryRequested, RunsFilter

from pipelines.knowledge_base import KnowledgeBaseError
from pipelines.landing import LandingError
from pipelines.staging import StagingError
from pseudonymize import KeyFileError
from schemas.contract import ContractError

STEP_TAG = "tyokyky/step"          # "stage" or "build": what a run writes
PARTNER_TAG = "tyokyky/partner"    # on staging runs: whose staging folder it writes
WAIT_TAG = "tyokyky/wait_for_staging"   # "no" on a build that staged in its own process

#: 1 s, 2 s, 4 s (± jitter): enough for a passing file-system fault, short for a real one.
FILE_SYSTEM_RETRY = RetryPolicy(max_retries=3, delay=1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

#: Errors of data or setup: retrying cannot help.
NOT_TRANSIENT = (StagingError, KnowledgeBaseError, KeyFileError, LandingError, ContractError)
#: File-system errors that an operator must fix (free space, permissions): retrying cannot help.
NOT_TRANSIENT_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
STAGING_POLL_SECONDS = 15
STALE_AFTER_SECONDS = 3 * 3600
STAGING_WAIT_POLLS = STALE_AFTER_SECONDS // STAGING_POLL_SECONDS + 10   # outlasts a stale run


@contextmanager
def no_retry_on_bad_data():
    """Turn errors of data or setup into a Failure that bypasses the retry policy."""
    try:
        yield
    except NOT_TRANSIENT as e:
        raise Failure(description=str(e), allow_retries=False) from e
    except OSError as e:
        if e.errno not in NOT_TRANSIENT_ERRNO:
            raise
        raise Failure(description=f"{e.strerror} ({type(e).__name__})", allow_retries=False) from e


def wait_for_staging(instance, run_tags: dict) -> None:
    """Ask for a later attempt while staging runs of this instance are queued or running."""
    if run_tags.get(WAIT_TAG) == "no":
        return
    now = time.time()
    records = instance.get_run_records(RunsFilter(statuses=ACTIVE, tags={STEP_TAG: "stage"}))
    if any(now - (r.start_time or r.create_timestamp.timestamp()) < STALE_AFTER_SECONDS for r in records):
        raise RetryRequested(max_retries=STAGING_WAIT_POLLS, seconds_to_wait=STAGING_POLL_SECONDS)
