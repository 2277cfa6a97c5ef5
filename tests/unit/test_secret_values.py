from __future__ import annotations

import re
import secrets

import keyring
import pytest

from opsconsole import masking, secret_values
from opsconsole.errors import UserError


def test_default_is_token_hex_32():
    value = secret_values.generate()
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert len(secrets.token_hex(32)) == len(value)
    assert masking.mask(f"JWT={value}") == "JWT=***"


@pytest.mark.parametrize("alphabet,pattern", [("hex", r"[0-9a-f]+"), ("urlsafe", r"[A-Za-z0-9_-]+"),
                                              ("alnum", r"[A-Za-z0-9]+")])
@pytest.mark.parametrize("length", [33, 40, 64])
def test_length_counts_characters_in_the_alphabet(alphabet, pattern, length):
    values = {secret_values.generate(length, alphabet) for _ in range(20)}
    assert len(values) == 20
    for value in values:
        assert len(value) == length and re.fullmatch(pattern, value)


def test_alnum_uses_its_whole_alphabet():
    seen = set("".join(secret_values.generate(200, "alnum") for _ in range(20)))
    assert seen == set(secret_values.ALPHABETS["alnum"])


@pytest.mark.parametrize("length,alphabet", [(31, "hex"), (21, "alnum"), (0, "urlsafe"), (5000, "hex"),
                                             (True, "hex"), ("32", "hex"), (32, "base32")])
def test_weak_or_malformed_requests_are_refused(length, alphabet):
    with pytest.raises(UserError):
        secret_values.generate(length, alphabet)


def test_fingerprint_is_short_stable_and_distinguishes():
    fp = secret_values.fingerprint("abc")
    assert fp == "sha256:ba7816bf" == secret_values.fingerprint("abc")
    assert secret_values.fingerprint("abd") != fp
    value = secret_values.generate()
    assert value not in secret_values.fingerprint(value)


def test_previous_value_round_trip_in_the_keyring(file_keyring):
    value = secret_values.generate()
    assert secret_values.previous("prod", "JWT_SECRET") is None
    secret_values.keep_previous("prod", "JWT_SECRET", value)
    assert file_keyring.holds(value)
    assert keyring.get_password("opsconsole", "previous/prod/JWT_SECRET") == value
    assert secret_values.previous("prod", "JWT_SECRET") == value
    assert secret_values.previous("staging", "JWT_SECRET") is None
    assert secret_values.forget_previous("prod", "JWT_SECRET") is True
    assert secret_values.previous("prod", "JWT_SECRET") is None
    assert not file_keyring.holds(value)
    assert secret_values.forget_previous("prod", "JWT_SECRET") is False


def test_without_a_keyring_keep_previous_refuses_and_previous_is_none(no_keyring):
    with pytest.raises(UserError):
        secret_values.keep_previous("prod", "JWT_SECRET", "x" * 40)
    assert secret_values.previous("prod", "JWT_SECRET") is None
    assert secret_values.forget_previous("prod", "JWT_SECRET") is False
