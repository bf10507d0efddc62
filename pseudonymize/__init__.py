"""Pseudonymisation of Finnish personal identity codes (henkilötunnus).

A small library with no Dagster or DuckDB import, so that it can be handed to a
partner as is. Everything about keys lives here:

* :mod:`pseudonymize.hetu` — normalise and validate one code (python-stdnum), derive
  birth year, sex and the temporary flag, and say why an invalid code is invalid;
* :mod:`pseudonymize.keys` — secrets, the HKDF-derived pseudonym key, fingerprints;
* :mod:`pseudonymize.columns` — the vectorised entry point for whole columns, and the memo
  that hashes each distinct code once per build.
"""
from pseudonymize.columns import PseudonymMemo, pseudonymize_column
from pseudonymize.hetu import HetuInfo, check, normalize
from pseudonymize.keys import KeyFileError, PseudonymKey, generate_secret_file, load_key_file

__all__ = [
    "HetuInfo",
    "KeyFileError",
    "PseudonymKey",
    "PseudonymMemo",
    "check",
    "generate_secret_file",
    "load_key_file",
    "normalize",
    "pseudonymize_column",
]
