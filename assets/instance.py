"""The production Dagster instance (``tyokyky serve``): PostgreSQL storage, run queue, retries.

``tyokyky run`` and ``make demo`` keep the project's ``dagster.yaml`` (SQLite, no server).
``serve`` writes this configuration into the instance home instead. The run queue runs one
run at a time: every run writes the one data directory (staging folders, the DuckDB file with
its single writer), and one run already stages every partner side by side on the machine's
cores (pipelines/batch.py). The ``build`` job's tag (:data:`STEP_TAG`) is limited to one as well,
so the limit holds if the run limit is raised for other jobs.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml
from dagster import DagsterInstance

from assets.names import STEP_TAG
from pipelines import postgres

RUN_RETRIES = 2
MARKER = "# written by tyokyky serve"


def production_config(postgres_url: str | None) -> dict:
    """Instance settings; ``postgres_url`` None means: read TYOKYKY_PG_URL at load time
    (so a password never lands in the file)."""
    url = postgres_url if postgres_url else {"env": "TYOKYKY_PG_URL"}
    return {
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_url": url}},
        # the default run coordinator is the queued one: these are its limits
        "concurrency": {
            "runs": {
                "max_concurrent_runs": 1,
                "tag_concurrency_limits": [{"key": STEP_TAG, "value": "build", "limit": 1}],
            },
            # the knowledge-base step's pool "duckdb_writer": one slot
            "pools": {"default_limit": 1},
        },
        # A run whose worker died (killed, out of memory, machine restart) is retried; a step
        # that failed is not run again here: the steps' own retry policies decide that.
        "run_retries": {"enabled": True, "max_retries": RUN_RETRIES, "retry_on_asset_or_op_failure": False},
        "run_monitoring": {"enabled": True, "start_timeout_seconds": 180, "poll_interval_seconds": 30},
    }


def write_production_config(home: Path, postgres_url: str | None) -> Path:
    """Write DAGSTER_HOME/dagster.yaml for serve; a file serve did not write is kept beside it."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if path.exists() and not path.read_text().startswith(MARKER):
        path.replace(home / "dagster.yaml.before-serve")
    body = yaml.safe_dump(production_config(postgres_url), sort_keys=False)
    tmp = home / "dagster.yaml.new"
    tmp.write_text(f"{MARKER}: PostgreSQL storage, run queue, retries (docs/operations.md)\n{body}")
    tmp.replace(path)
    return path


class InstanceError(Exception):
    """The instance's storage cannot be opened; the message is one line for the user."""


def open_instance(home: Path) -> DagsterInstance:
    """The instance in ``home``, whichever storage its dagster.yaml names, or one line on why not."""
    config = (home / "dagster.yaml").read_text() if (home / "dagster.yaml").exists() else ""
    if postgres.PG_URL_ENV in config:
        if not postgres.external_url():
            raise InstanceError(f"the Dagster instance in {home} reads its PostgreSQL URL from "
                                f"{postgres.PG_URL_ENV}, which is not set: set it as for 'tyokyky serve'")
        os.environ[postgres.PG_URL_ENV] = postgres.external_url()   # the driver dagster-postgres ships
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)   # dagster-postgres logs each connection retry as a warning on stderr
    try:
        return DagsterInstance.from_config(str(home.resolve()))
    except Exception as e:  # any storage failure: one line with its first line, never a traceback
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InstanceError(f"cannot open the Dagster instance in {home} ({postgres.describe(reason)}): "
                            f"if it is the production instance, start 'tyokyky serve' "
                            f"or check {postgres.PG_URL_ENV}") from None
    finally:
        root.setLevel(level)
