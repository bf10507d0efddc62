"""The one resource every asset uses: paths and the key file (never the key itself)."""
from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pipelines.settings import Settings
from pseudonymize import PseudonymKey, load_key_file
from schemas import Contract, load_contracts


class TyokykyResource(ConfigurableResource):
    """Paths of one deployment. Config shows paths only; the key is loaded when needed."""

    landing: str
    data: str
    key_file: str = ""
    parameters_file: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> "TyokykyResource":
        return cls(landing=str(s.landing), data=str(s.data), key_file=str(s.key_file or ""),
                   parameters_file=str(s.parameters_file or ""))

    @property
    def settings(self) -> Settings:
        return Settings(Path(self.landing), Path(self.data), Path(self.key_file) if self.key_file else None,
                        Path(self.parameters_file) if self.parameters_file else None)

    def key(self) -> PseudonymKey:
        return load_key_file(self.key_file or None)

    def contracts(self) -> dict[str, Contract]:
        return load_contracts()
