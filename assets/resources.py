"""The one resource every asset uses: paths and the key file (never the key itself)."""
from __future__ import annotations

from dagster import ConfigurableResource

from pipelines.settings import Settings
from pseudonymize import PseudonymKey, load_key_file
from schemas import Contract, load_contracts


class TyokykyResource(ConfigurableResource):
    """Paths of one deployment. Config shows paths only; the key is loaded when needed.

    A path left empty is read from the environment when the run starts (TYOKYKY_LANDING,
    TYOKYKY_DATA, TYOKYKY_KEY_FILE, TYOKYKY_PARAMETERS, as for the command line), not when
    the code location loads: the daemon's and the webserver's runs see the same settings."""

    landing: str = ""
    data: str = ""
    key_file: str = ""
    parameters_file: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> "TyokykyResource":
        return cls(landing=str(s.landing), data=str(s.data), key_file=str(s.key_file or ""),
                   parameters_file=str(s.parameters_file or ""))

    @property
    def settings(self) -> Settings:
        return Settings.resolve(self.landing or None, self.data or None, self.key_file or None,
                                self.parameters_file or None)

    def key(self) -> PseudonymKey:
        return load_key_file(self.settings.key_file)

    def contracts(self) -> dict[str, Contract]:
        return load_contracts()
