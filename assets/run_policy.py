"""How steps retry and fail.

* A step that touches the file system retries with exponential back-off: an NFS hiccup or a
  file locked for a moment pass; a second try costs little. A full disk, a read-only file system
  or a permission error does not pass in seconds: it fails at once with its one line.
* A failure caused by the data or the setup (a blocking contract check, pseudonyms of another
  key, a missing key file, a broken contract) is not retried: it fails at once with its one-line
  reason, because trying again cannot help.

A build never starts from half of a batch of deliveries: staging and rebuilding are one run
(the ``build`` job), and the production queue runs one such run at a time.
"""
from __future__ import annotations

import errno
from contextlib import contextmanager

from dagster import Backoff, Failure, Jitter, RetryPolicy

from pipelines.knowledge_base import KnowledgeBaseError
from pipelines.landing import LandingError
from pipelines.staging import StagingError
from pseudonymize import KeyFileError
from schemas.contract import ContractError

#: 1 s, 2 s, 4 s (± jitter): enough for a passing file-system fault, short for a real one.
FILE_SYSTEM_RETRY = RetryPolicy(max_retries=3, delay=1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

#: Errors of data or setup: retrying cannot help.
NOT_TRANSIENT = (StagingError, KnowledgeBaseError, KeyFileError, LandingError, ContractError)
#: File-system errors that an operator must fix (free space, permissions): retrying cannot help.
NOT_TRANSIENT_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}



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
