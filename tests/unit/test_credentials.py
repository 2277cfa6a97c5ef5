from __future__ import annotations

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from opsconsole import credentials, masking
from opsconsole.errors import UserError


def test_environment_wins_over_the_keyring_and_names_the_variable(file_keyring, monkeypatch):
    credentials.store("railway", "token", "kr-token-7f3a")
    monkeypatch.delenv("RAILWAY_TOKEN", raising=False)
    monkeypatch.setenv("RAILWAY_API_TOKEN", "env-token-91c2")
    found = credentials.lookup("railway", "token", ("RAILWAY_TOKEN", "RAILWAY_API_TOKEN"))
    assert found == credentials.Credential("env-token-91c2", "environment ($RAILWAY_API_TOKEN)")
    assert masking.mask("Bearer env-token-91c2") == "Bearer ***"

    monkeypatch.delenv("RAILWAY_API_TOKEN")
    found = credentials.lookup("railway", "token", ("RAILWAY_TOKEN", "RAILWAY_API_TOKEN"))
    assert found == credentials.Credential("kr-token-7f3a", "keyring")


def test_an_empty_variable_does_not_count(file_keyring, monkeypatch):
    monkeypatch.setenv("RAILWAY_TOKEN", "")
    assert credentials.lookup("railway", "token", ("RAILWAY_TOKEN",)) is None


def test_store_writes_the_real_backend_under_service_opsconsole(file_keyring):
    credentials.store("railway", "token", "stored-token-55e1")
    # Read back through keyring's public API, not opsconsole's: the entry is where the docs say.
    assert keyring.get_password("opsconsole", "railway/token") == "stored-token-55e1"
    assert file_keyring.holds("stored-token-55e1") and b"railway_2ftoken" in file_keyring.read_bytes()
    assert masking.mask("x stored-token-55e1") == "x ***"
    assert credentials.delete("railway", "token") is True
    assert credentials.delete("railway", "token") is False
    assert credentials.lookup("railway", "token") is None
    assert not file_keyring.holds("stored-token-55e1")


def test_no_backend_lookup_uses_env_only_and_store_delete_explain(no_keyring, monkeypatch):
    assert credentials.backend() is None
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abc-secret-0000")
    assert credentials.lookup("aws", "secret", ("AWS_SECRET_ACCESS_KEY",)).source == "environment ($AWS_SECRET_ACCESS_KEY)"
    assert credentials.lookup("railway", "token", ("RAILWAY_TOKEN_UNSET_X",)) is None
    for call in (lambda: credentials.store("railway", "token", "v-123"), lambda: credentials.delete("railway", "token")):
        with pytest.raises(UserError) as err:
            call()
        assert str(err.value) == credentials.NO_BACKEND and "\n" not in str(err.value)


def test_an_implicit_plaintext_backend_is_not_used(tmp_path, monkeypatch):
    # keyrings.alt installed and picked by keyring's auto-detection, but nobody asked for it:
    # opsconsole must not quietly write tokens to a plaintext file.
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    try:
        assert credentials.backend() is None
        with pytest.raises(UserError):
            credentials.store("railway", "token", "should-not-be-written")
        assert not (tmp_path / "data").exists()
    finally:
        keyring.set_keyring(previous)


def test_an_implicit_plaintext_backend_chosen_in_keyringrc_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "config" / "python_keyring").mkdir(parents=True)
    (tmp_path / "config" / "python_keyring" / "keyringrc.cfg").write_text(
        "[backend]\ndefault-keyring=keyrings.alt.file.PlaintextKeyring\n")
    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    try:
        assert credentials.backend() is not None
        credentials.store("railway", "token", "rc-token-1")
        assert credentials.lookup("railway", "token") == credentials.Credential("rc-token-1", "keyring")
    finally:
        keyring.set_keyring(previous)


def test_repr_never_shows_the_value():
    c = credentials.Credential("hunter2-value", "keyring")
    assert "hunter2-value" not in repr(c) and "hunter2-value" not in str(c)
