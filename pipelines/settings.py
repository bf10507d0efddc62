"""Where things are: landing zone, data directory, key file — from flags or environment."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA = "data"
KB_FILE = "tyokyky.duckdb"  # not kb.duckdb: DuckDB names the catalog after the file, and a
                            # catalog called "kb" makes every kb.<table> reference ambiguous


@dataclass(frozen=True)
class Settings:
    landing: Path
    data: Path
    key_file: Path | None
    parameters_file: Path | None = None

    @classmethod
    def resolve(cls, landing=None, data=None, key_file=None, parameters_file=None) -> "Settings":
        data = Path(data or os.environ.get("TYOKYKY_DATA") or DEFAULT_DATA)
        landing = Path(landing or os.environ.get("TYOKYKY_LANDING") or data / "landing")
        key = key_file or os.environ.get("TYOKYKY_KEY_FILE")
        params = parameters_file or os.environ.get("TYOKYKY_PARAMETERS")
        if not params and (data / "parameters.yaml").exists():
            params = data / "parameters.yaml"
        return cls(landing, data, Path(key) if key else None, Path(params) if params else None)

    @property
    def staging(self) -> Path:
        return self.data / "staging"

    @property
    def landing_hashes(self) -> Path:
        """Cache of landing-file content hashes by (size, mtime)."""
        return self.staging / "_landing_hashes.json"

    @property
    def kb_path(self) -> Path:
        return self.data / KB_FILE

    @property
    def reports(self) -> Path:
        return self.data / "reports"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else self.data / ".dagster"
