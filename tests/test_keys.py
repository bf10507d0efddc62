"""Key files: keygen, loading checks, fingerprints."""
import os
import stat

import pytest

from pseudonymize import KeyFileError, PseudonymKey, generate_secret_file, load_key_file


def test_keygen_writes_0600_secret_and_refuses_overwrite(tmp_path):
    path = generate_secret_file(tmp_path / "k.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = bytes.fromhex(path.read_text().strip())
    assert len(secret) >= 32
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_secret_file(path)
    assert path.read_bytes() == before


def test_two_keygens_differ(tmp_path):
    a = load_key_file(generate_secret_file(tmp_path / "a.key"))
    b = load_key_file(generate_secret_file(tmp_path / "b.key"))
    assert a.fingerprint != b.fingerprint


@pytest.mark.parametrize("content, mode, message", [
    (None, 0o600, "does not exist"),
    (b"", 0o600, "is empty"),
    (b"abcd\n", 0o600, "holds 2 bytes"),
    (b"not hex at all, not hex at all, not hex at all, not hex at all!!", 0o600, "not a hex secret"),
    (b"00" * 32, 0o644, "readable by group or others"),
    (b"00" * 32, 0o640, "chmod 600"),
])
def test_bad_key_files_stop_with_one_line(tmp_path, content, mode, message):
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_bytes(content)
        os.chmod(path, mode)
    with pytest.raises(KeyFileError) as e:
        load_key_file(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_no_key_file_given():
    with pytest.raises(KeyFileError, match="TYOKYKY_KEY_FILE"):
        load_key_file(None)


def test_fingerprint_identifies_but_does_not_reveal(tmp_path):
    path = generate_secret_file(tmp_path / "k.key")
    secret = path.read_text().strip()
    key = load_key_file(path)
    assert key.fingerprint == load_key_file(path).fingerprint
    assert secret not in key.fingerprint and key._key.hex() not in key.fingerprint
    assert secret not in repr(key) and key._key.hex() not in repr(key)
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(key)


def test_domain_separation():
    secret = b"s" * 32
    assert PseudonymKey(secret)._key != PseudonymKey(secret, purpose=b"other/v1")._key
    assert PseudonymKey(secret)._key != secret
