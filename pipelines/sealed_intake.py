"""Pipeline side of a delivery pseudonymised by the partner: verify its manifest, read, open.

A delivery folder holding ``manifest.json`` beside its file was made by
``tyokyky pseudonymise-export`` (:mod:`pipelines.partner_export`). Before a row is used the
manifest must match the deployment and the file: the deployment key's fingerprint, the partner's
key, the partner, period and file name, the contract version, the file's SHA-256, and the counts
(records, rows, invalid codes by reason). Any mismatch rejects the delivery with one line. The
tokens are then opened in memory and the reader's table handed on with the codes in place, so
staging pseudonymises exactly as for a raw delivery; rows the partner's reader could not read
come back from the manifest with their lines and reasons.
"""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.landing import Delivery, file_sha256
from pipelines.partner_export import MANIFEST_FORMAT, contract_version
from pseudonymize.keys import PseudonymKey
from pseudonymize.redact import redact
from pseudonymize.sealed import TOKEN_CHARS, Opener, PartnerKey, SealError, seal_context
from schemas.contract import Contract
from schemas.readers import DeliveryRejected, ReadResult, read_delivery
from schemas.writers import sealed_contract

AGAIN = "pseudonymise the export again with 'tyokyky pseudonymise-export'"


def _load_manifest(delivery: Delivery) -> dict:
    try:
        manifest = json.loads(delivery.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DeliveryRejected(f"manifest.json cannot be read as JSON: {AGAIN}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DeliveryRejected(f"manifest.json is not a manifest of 'tyokyky pseudonymise-export' "
                               f"({MANIFEST_FORMAT}): {AGAIN}")
    return manifest


def verify_manifest(manifest: dict, contract: Contract, delivery: Delivery, key: PseudonymKey) -> None:
    """Everything about the delivery that can be checked before reading it (one line on a mismatch)."""
    if "pseudonymised" not in contract.accepts:
        raise DeliveryRejected(f"{contract.partner} delivers raw exports only (schemas/{contract.partner}.yaml, "
                               "'accepts'): deliver the raw export, or declare 'pseudonymised' in the contract")
    if manifest.get("key_fingerprint") != key.fingerprint:
        shown = str(manifest.get("key_fingerprint"))[:12]
        raise DeliveryRejected(f"pseudonymised under another key (fingerprint {shown}, this deployment's is "
                               f"{key.short_fingerprint}): issue {contract.partner} a new key with 'tyokyky "
                               f"partner-key' and {AGAIN}")
    if manifest.get("partner_key_fingerprint") != PartnerKey.issue(key, contract.partner).fingerprint:
        raise DeliveryRejected(f"pseudonymised with a key file issued to another partner: {contract.partner} "
                               f"must use its own key file ('tyokyky partner-key --partner {contract.partner}')")
    expected = {"partner": contract.partner, "period": delivery.period, "file": delivery.file.name}
    for field, value in expected.items():
        if manifest.get(field) != value:
            raise DeliveryRejected(f"manifest.json names another {field} than the delivery's "
                                   f"({redact(str(manifest.get(field)))!r}): {AGAIN} into this folder")
    if manifest.get("contract_version") != contract_version(contract):
        raise DeliveryRejected(f"pseudonymised under another version of schemas/{contract.partner}.yaml: "
                               f"update the partner's tyokyky and {AGAIN}")
    if manifest.get("sha256") != file_sha256(delivery.file):
        raise DeliveryRejected(f"file {delivery.file_name!r} does not match the SHA-256 in manifest.json: it "
                               f"changed after pseudonymisation; {AGAIN}")


def _count(manifest: dict, name: str) -> int:
    value = manifest.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DeliveryRejected(f"manifest.json: {name} is not a count: {AGAIN}")
    return value


def _row_errors(manifest: dict) -> list[tuple[int, str]]:
    errors = manifest.get("row_errors")
    if not isinstance(errors, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and isinstance(e[1], str) for e in errors):
        raise DeliveryRejected(f"manifest.json: row_errors is not a list of [line, reason]: {AGAIN}")
    return [(line, redact(reason)[:300]) for line, reason in errors]  # partner text: screened like any other


def read_sealed(contract: Contract, delivery: Delivery, key: PseudonymKey) -> ReadResult:
    """The reader's table of a pseudonymised delivery, identity codes opened (in memory only)."""
    manifest = _load_manifest(delivery)
    verify_manifest(manifest, contract, delivery, key)
    records, rows = _count(manifest, "records"), _count(manifest, "rows")
    errors = _row_errors(manifest)
    result = read_delivery(sealed_contract(contract, TOKEN_CHARS), delivery.file, delivery.period)
    table, unreadable = result.table, pa.array([e[0] for e in errors], pa.int64())
    if errors:  # the lines the partner's reader could not read hold fillers here
        table = table.filter(pc.invert(pc.is_in(table.column("_line"), unreadable)))
    if any(line not in set(unreadable.to_pylist()) for line, _ in result.row_errors):
        raise DeliveryRejected(f"the file holds unreadable records that manifest.json does not list: {AGAIN}")
    if table.num_rows != rows or rows + len(errors) != records:
        raise DeliveryRejected(f"manifest.json counts {records} records ({rows} rows, {len(errors)} unreadable) "
                               f"but the file holds {table.num_rows} rows: {AGAIN}")
    try:
        opener = Opener(key, contract.partner, bytes.fromhex(str(manifest.get("ephemeral_public_key"))),
                        seal_context(contract.partner, delivery.period, delivery.file.name))
        codes, invalid = opener.open_column(table.column(contract.identifier), table.column("_line"))
    except (SealError, ValueError) as e:
        raise DeliveryRejected(f"{e if isinstance(e, SealError) else 'manifest.json: no valid ephemeral key'}: "
                               f"{AGAIN}") from None
    claimed = manifest.get("invalid_codes")
    if invalid != claimed:
        raise DeliveryRejected(f"manifest.json counts invalid codes {claimed!r} but the file holds {invalid!r}: "
                               f"{AGAIN}")
    table = table.set_column(table.schema.get_field_index(contract.identifier), contract.identifier, codes)
    return ReadResult(table, sorted(errors),
                      codes_redacted=_count(manifest, "codes_redacted_in_values"))


def read_any(contract: Contract, delivery: Delivery, key: PseudonymKey) -> ReadResult:
    """A delivery as the partner exported it, or pseudonymised by the partner (it has a manifest)."""
    if delivery.manifest is not None:  # during a rekey, sealed under the old key and staged under the new
        return read_sealed(contract, delivery, getattr(key, "opening_key", key))
    if "raw" not in contract.accepts:
        raise DeliveryRejected(f"{contract.partner} delivers pseudonymised exports only (schemas/"
                               f"{contract.partner}.yaml, 'accepts'): {AGAIN}")
    return read_delivery(contract, delivery.file, delivery.period)
