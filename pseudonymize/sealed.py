"""Identity codes sealed at the partner: encrypted to the deployment, opened only by the pipeline.

A partner that pseudonymises its own export must not hold anything that makes, or can be
brute-forced into, the knowledge base's pseudonyms: the identity-code space is small, so an
HMAC key in a partner's hands is a dictionary of every client. Instead each valid normalised
code is *encrypted* to a public key the deployment issues to that partner:

* the deployment's secret yields, by HKDF with a purpose label of its own, one X25519 key pair
  per partner (``partner_private_key``); the partner's key file holds only the public half, its
  partner name and the deployment key's fingerprint — nothing that can decrypt, its own export
  included, so one partner's copy reads no other partner's export (nor its own);
* per delivery file the partner makes an ephemeral X25519 key; ECDH with the partner public key
  and HKDF (bound to partner, period and file name) give an AES-256-GCM key and a MAC key;
* each distinct code is encrypted with a synthetic nonce (HMAC of the code under the MAC key),
  so equal codes in one file get one token and the pipeline decrypts once per distinct code;
  the tag makes a changed token, or one moved between files or partners, fail to open.

The pipeline opens the tokens in memory right after reading and runs the usual pseudonymisation
on the codes, so a sealed delivery gives exactly the pseudonyms of a raw one. Invalid codes
never leave the partner: their rows carry only the reason (:data:`INVALID_MARKERS`).
No Dagster or DuckDB import: this module ships to partners with the readers.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pseudonymize import hetu
from pseudonymize.columns import REASONS, check_column
from pseudonymize.keys import KeyFileError, PseudonymKey

PARTNER_KEY_FORMAT = "tyokyky-partner-key/v1"
SEAL_PURPOSE = b"tyokyky/partner-seal/x25519/v1"
FILE_PURPOSE = b"tyokyky/partner-seal/file/v1"
NONCE = 12
TOKEN_CHARS = 52  # base64url of nonce (12) + code (11) + tag (16) bytes, no padding
#: what an invalid code becomes in a sealed file: its reason, never the code
INVALID_MARKERS = {
    hetu.BAD_LENGTH: "invalid:bad-length",
    hetu.BAD_CHARACTERS: "invalid:bad-characters",
    hetu.UNKNOWN_CENTURY: "invalid:unknown-century-sign",
    hetu.IMPOSSIBLE_DATE: "invalid:impossible-date",
    hetu.RESERVED: "invalid:reserved-individual-number",
    hetu.BAD_CHECK: "invalid:bad-check-character",
}
#: an in-memory stand-in per reason that the usual checks classify with that same reason (none is
#: shaped like an identity code: 'Q' and 'Z' are no century sign or check character)
STAND_INS = {
    hetu.BAD_LENGTH: "X",
    hetu.BAD_CHARACTERS: "XXXXXXXXXXX",
    hetu.UNKNOWN_CENTURY: "010100Q002Z",
    hetu.IMPOSSIBLE_DATE: "320100-002Z",
    hetu.RESERVED: "010100-001Z",
    hetu.BAD_CHECK: "010100-002Z",
}


class SealError(Exception):
    """A sealed code or partner key cannot be used; one line without key material or codes."""


def _hkdf(material: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(material)


def _raw_public(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def partner_private_key(key: PseudonymKey, partner: str) -> X25519PrivateKey:
    """The deployment's private key for one partner's sealed deliveries (derived, never stored)."""
    return X25519PrivateKey.from_private_bytes(_hkdf(key.seal_seed(), SEAL_PURPOSE + b"/" + partner.encode()))


def public_fingerprint(public_raw: bytes) -> str:
    return hashlib.sha256(b"tyokyky/partner-public/v1" + public_raw).hexdigest()


class PartnerKey:
    """What one partner holds: its public key, its name, the deployment key's fingerprint."""

    def __init__(self, partner: str, public_raw: bytes, key_fingerprint: str):
        self.partner, self.public_raw, self.key_fingerprint = partner, public_raw, key_fingerprint

    @property
    def fingerprint(self) -> str:
        return public_fingerprint(self.public_raw)

    @classmethod
    def issue(cls, key: PseudonymKey, partner: str) -> "PartnerKey":
        return cls(partner, _raw_public(partner_private_key(key, partner).public_key()), key.fingerprint)

    def to_json(self) -> str:
        return json.dumps({"format": PARTNER_KEY_FORMAT, "partner": self.partner,
                           "public_key": _b64(self.public_raw), "public_key_fingerprint": self.fingerprint,
                           "key_fingerprint": self.key_fingerprint,
                           "issued": dt.date.today().isoformat()}, indent=1) + "\n"

    def write(self, path: str | os.PathLike) -> Path:
        """Mode 0600; never overwrites (a partner key is issued, not edited)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{path} already exists; refusing to overwrite a partner key (move it away first)"
                               ) from None
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.chmod(path, 0o600)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, partner: str) -> "PartnerKey":
        path = Path(path)
        if not path.is_file():
            raise KeyFileError(f"partner key file {path} does not exist: ask the deployment for one "
                               f"('tyokyky partner-key --partner {partner} --out FILE')")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(f"partner key file {path} is readable by group or others (mode {mode:04o}): "
                               f"run 'chmod 600 {path}'")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            assert raw["format"] == PARTNER_KEY_FORMAT
            key = cls(str(raw["partner"]), _unb64(raw["public_key"]), str(raw["key_fingerprint"]))
            X25519PublicKey.from_public_bytes(key.public_raw)
        except Exception:
            raise KeyFileError(f"partner key file {path} is not a key written by 'tyokyky partner-key'") from None
        if key.partner != partner:
            raise KeyFileError(f"partner key file {path} was issued to partner {key.partner!r}, not {partner!r}: "
                               f"use {partner}'s own key file")
        return key


def _file_keys(shared: bytes, salt: bytes, context: str) -> tuple[AESGCM, bytes]:
    okm = _hkdf(shared, FILE_PURPOSE + b"|" + context.encode("utf-8"), 64, salt)
    return AESGCM(okm[:32]), okm[32:]


def seal_context(partner: str, period: str, file_name: str) -> str:
    """What a file's seal is bound to: a token moved to another partner, period or file fails to open."""
    return f"{partner}|{period}|{file_name}"


class Sealer:
    """Seals the codes of one delivery file under a fresh ephemeral key (partner side)."""

    def __init__(self, partner_key: PartnerKey, context: str):
        ephemeral = X25519PrivateKey.generate()
        self.ephemeral_public = _raw_public(ephemeral.public_key())
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(partner_key.public_raw))
        self._aead, self._mac = _file_keys(shared, self.ephemeral_public + partner_key.public_raw, context)
        self._aad = context.encode("utf-8")

    def seal_one(self, code: bytes) -> bytes:
        nonce = hmac.new(self._mac, code, "sha256").digest()[:NONCE]
        return nonce + self._aead.encrypt(nonce, code, self._aad)

    def seal_column(self, raw_codes) -> tuple[pa.Array, dict[str, int]]:
        """Normalise and check every code; a valid one becomes its token, an invalid one its
        reason marker, a missing one stays null. Returns the column and invalid counts by reason."""
        distinct, indices, reasons = check_column(raw_codes)
        codes = distinct.to_pylist()
        labels = [INVALID_MARKERS.get(r) for r in REASONS]  # None for valid and missing
        tokens = [_b64(self.seal_one(c.encode("ascii"))) if r == 0 else labels[r] for c, r in zip(codes, reasons)]
        row_reasons = pc.drop_null(pa.array(reasons, pa.int8()).take(indices)) if codes else pa.array([], pa.int8())
        counts = {REASONS[item["values"]]: item["counts"] for item in pc.value_counts(row_reasons).to_pylist()
                  if labels[item["values"]]}
        return pa.array(tokens, pa.string()).take(indices), dict(sorted(counts.items()))


class Opener:
    """Opens the tokens of one sealed file (pipeline side, deployment key in memory only)."""

    def __init__(self, key: PseudonymKey, partner: str, ephemeral_public: bytes, context: str):
        private = partner_private_key(key, partner)
        recipient = _raw_public(private.public_key())
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        except ValueError:
            raise SealError("the manifest's ephemeral key is not a valid X25519 public key") from None
        self._aead, _ = _file_keys(shared, ephemeral_public + recipient, context)
        self._aad = context.encode("utf-8")

    def open_column(self, sealed: pa.Array, lines: pa.Array) -> tuple[pa.Array, dict[str, int]]:
        """Codes (in memory) for the tokens; invalid markers become a stand-in with the same
        reason. A token that does not open raises SealError naming its line."""
        if isinstance(sealed, pa.ChunkedArray):
            sealed = sealed.combine_chunks()
        stripped = pc.utf8_trim_whitespace(sealed)
        encoded = stripped.dictionary_encode()
        distinct = encoded.dictionary.to_pylist()
        markers = {m: r for r, m in INVALID_MARKERS.items()}
        out: list[str | None] = []
        for position, token in enumerate(distinct):
            if token in markers or not token:  # an invalid code's reason, or blank: a missing code
                out.append(STAND_INS[markers[token]] if token else None)
                continue
            try:
                blob = _unb64(token)
                code = self._aead.decrypt(blob[:NONCE], blob[NONCE:], self._aad).decode("ascii")
            except (InvalidTag, ValueError, UnicodeDecodeError):
                first = pc.index(encoded.indices, position).as_py()
                line = pc.take(lines, [first])[0].as_py()
                raise SealError(f"the identity token on line {line} cannot be opened: the file was "
                                "changed after pseudonymisation, or sealed for another partner, file or "
                                "deployment") from None
            out.append(code)
        opened = pa.array(out, pa.string()).take(encoded.indices)
        counts: dict[str, int] = {}
        present = pc.value_counts(pc.drop_null(stripped)).to_pylist()
        for item in present:
            if item["values"] in markers:
                counts[markers[item["values"]]] = item["counts"]
        return opened, counts
