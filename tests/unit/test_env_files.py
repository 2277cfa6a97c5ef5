"""`.env` files read once, in linear time, exactly as python-dotenv reads them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.config import env_file_values

SHAPES = [
    "A=1\nB=${A}-x\nC=${MISSING:-fallback}\nD=${HOME_FOR_TEST}\n",
    "export A='single ${A} quoted'\nB=\"double\\nline\"\n# comment\n\nC= spaced value # trailing\n",
    'KEY="-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"\nAFTER=${KEY}\n',
    "A=1\nA=2\nB=${A}\nBARE\nC=${BARE:-d}\n",
    "A=x\r\nB=${A}y\r\n",
]


@pytest.mark.parametrize("text", SHAPES)
def test_values_are_python_dotenvs(tmp_path, monkeypatch, text):
    monkeypatch.setenv("HOME_FOR_TEST", "/home/test")
    path = tmp_path / ".env"
    path.write_text(text)
    assert env_file_values(path) == {k: v for k, v in dotenv_values(path).items() if v is not None}


NAMES = st.sampled_from(["A", "B", "C", "HOME_FOR_TEST"])
VALUES = st.lists(st.one_of(st.text("xyz -#", max_size=4), NAMES.map(lambda n: f"${{{n}}}"),
                            NAMES.map(lambda n: f"${{{n}:-dflt}}")), max_size=4).map("".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES, st.sampled_from(["", "'", '"'])), max_size=8))
def test_any_file_reads_as_python_dotenv_reads_it(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text("".join(f"{name}={quote}{value.replace(quote, '') if quote else value}{quote}\n"
                            for name, value, quote in lines))
    os.environ["HOME_FOR_TEST"] = "/home/test"
    try:
        assert env_file_values(path) == {k: v for k, v in dotenv_values(path).items() if v is not None}
    finally:
        del os.environ["HOME_FOR_TEST"]


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    assert env_file_values(path) == {"A": "1"}
    path.write_text("A=22\n")  # same second, new size: a new stamp
    assert env_file_values(path) == {"A": "22"}


def test_a_100000_line_env_no_longer_stalls_check(tmp_path):
    """It took 3 min 54 s (python-dotenv's expansion is quadratic); a hang guard, not a timing claim: the figures
    are in benchmarks/masking.py."""
    (tmp_path / ".env").write_text("".join(f"VAR_{i}_SECRET=v{i:06d}-{'k' * 24}\n" for i in range(100_000)))
    (tmp_path / "opsconsole.toml").write_text('[environments.local]\nprovider = "local"\n'
                                              '[environments.local.services.db]\nkind = "tcp"\n'
                                              'url = "tcp://127.0.0.1:9"\n')
    proc = subprocess.run([sys.executable, "-m", "opsconsole", "check", "--env", "local"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "db" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
