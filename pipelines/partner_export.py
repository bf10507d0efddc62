"""Partner side: pseudonymise an export before it leaves the partner (``tyokyky pseudonymise-export``).

Each delivery ``IN/<YYYY-MM>/<file>`` is read with the pipeline's own reader for the partner's
contract, its identity codes normalised, checked and sealed (:mod:`pseudonymize.sealed`), and
written as ``OUT/<YYYY-MM>/<file>`` in the same format, every record on its original line, with
``manifest.json`` beside it. No identity code is written: valid codes leave as tokens only the
deployment can open, invalid ones as their reason, and free-text values with anything shaped
like a code are redacted as the pipeline would. Rows the reader could not read are listed in
the manifest by line and reason, so the pipeline's quarantine is what it would be for the raw
file.

Imports stay light (readers, pyarrow, cryptography; no DuckDB or Dagster): a partner runs this
on its own machine.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.landing import MANIFEST, PERIOD, file_sha256, inspect_folder
from pseudonymize.redact import MARKER, PATTERN
from pseudonymize.sealed import TOKEN_CHARS, PartnerKey, Sealer, seal_context
from schemas.contract import Contract
from schemas.readers import DeliveryRejected, read_delivery
from schemas.writers import sealed_contract, write_delivery

MANIFEST_FORMAT = "tyokyky-pseudonymised-delivery/v1"


class ExportError(Exception):
    """The export cannot be made at all (one line for the partner)."""


def contract_version(contract: Contract) -> str:
    """The contract a delivery was read under: the SHA-256 of its YAML file."""
    return hashlib.sha256(contract.path.read_bytes()).hexdigest()


@dataclass
class ExportResult:
    written: list[str] = field(default_factory=list)     # periods written
    problems: list[str] = field(default_factory=list)    # one line per delivery not written
    rows: int = 0
    invalid_codes: int = 0


def redact_text_columns(contract: Contract, table: pa.Table) -> tuple[pa.Table, int]:
    """Free-text values holding anything shaped like an identity code, redacted; how many had one."""
    found = 0
    for name in (c.name for c in contract.columns if c.type == "text"):
        values = table.column(name)
        hits = pc.match_substring_regex(values, PATTERN)
        found += pc.sum(hits).as_py() or 0
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.replace_substring_regex(values, PATTERN, MARKER))
    return table, found


def export_delivery(contract: Contract, partner_key: PartnerKey, raw_file: Path, period: str, out_folder: Path) -> dict:
    """Seal one delivery file into ``out_folder`` (file + manifest); returns the manifest.
    Raises DeliveryRejected for what would reject the raw delivery in the pipeline."""
    result = read_delivery(contract, raw_file, period)
    table, redacted = redact_text_columns(contract, result.table)
    sealer = Sealer(partner_key, seal_context(contract.partner, period, raw_file.name))
    sealed, invalid = sealer.seal_column(table.column(contract.identifier))
    table = table.set_column(table.schema.get_field_index(contract.identifier), contract.identifier, sealed)
    out_folder.mkdir(parents=True)
    target = out_folder / raw_file.name
    write_delivery(sealed_contract(contract, TOKEN_CHARS), table.sort_by("_line"), target, raw_file, result.rows_read)
    manifest = {
        "format": MANIFEST_FORMAT,
        "partner": contract.partner,
        "period": period,
        "contract_version": contract_version(contract),
        "key_fingerprint": partner_key.key_fingerprint,
        "partner_key_fingerprint": partner_key.fingerprint,
        "ephemeral_public_key": sealer.ephemeral_public.hex(),
        "file": target.name,
        "sha256": file_sha256(target),
        "records": result.rows_read,           # data records in the raw file
        "rows": table.num_rows,                # of them read as rows (the rest: row_errors)
        "row_errors": [[line, reason] for line, reason in result.row_errors],
        "invalid_codes": invalid,              # rows whose code is invalid, by reason
        "codes_redacted_in_values": redacted,
        "pseudonymised_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (out_folder / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def pseudonymise_export(contract: Contract, partner_key: PartnerKey, in_dir: Path, out_dir: Path) -> ExportResult:
    """Every delivery folder of ``in_dir``; one that cannot be read is reported and not written."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ExportError(f"{in_dir} is not a folder: pass the export folder (<YYYY-MM>/<file> inside) with --in")
    if out_dir.resolve() == in_dir.resolve() or out_dir.resolve().is_relative_to(in_dir.resolve()):
        raise ExportError(f"--out {out_dir} lies inside --in {in_dir}: give a folder outside the raw export")
    folders = sorted(p for p in in_dir.iterdir() if p.is_dir() and PERIOD.fullmatch(p.name))
    if not folders:
        raise ExportError(f"{in_dir} holds no <YYYY-MM> delivery folder")
    result = ExportResult()
    for folder in folders:
        delivery, _ = inspect_folder(contract, folder, in_dir)
        if delivery.problem:
            result.problems.append(f"{folder.name}: {delivery.problem}")
            continue
        final = out_dir / folder.name
        fresh = out_dir / f".{folder.name}.new"  # hidden: a half-written folder is never a delivery
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            manifest = export_delivery(contract, partner_key, delivery.file, folder.name, fresh)
        except DeliveryRejected as e:
            shutil.rmtree(fresh, ignore_errors=True)
            result.problems.append(f"{folder.name}: {delivery.file_name}: {e}")
            continue
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        if final.exists():
            shutil.rmtree(final)
        os.replace(fresh, final)
        result.written.append(folder.name)
        result.rows += manifest["records"]
        result.invalid_codes += sum(manifest["invalid_codes"].values())
    return result
