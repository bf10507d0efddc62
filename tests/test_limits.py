"""The machine settings of pipelines/limits.py that take effect when the core is imported."""
import os
import subprocess
import sys

import pyarrow as pa
import pytest

POOL = "import pyarrow as pa, pipelines.limits as l; print(pa.default_memory_pool().backend_name, l.use_jemalloc())"


def _pool(env_pool: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    return subprocess.run([sys.executable, "-c", POOL], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow is built without jemalloc")
def test_arrow_allocates_from_jemalloc_once_the_core_is_imported():
    assert _pool(None) == ["jemalloc", "True"]


def test_a_pool_the_operator_chose_is_kept():
    assert _pool("system") == ["system", "False"]
