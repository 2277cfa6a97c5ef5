"""The `railway` shell function an sh block gets on a railway environment, run by real bash against a stand-in CLI:
a nested `railway run` unwrapped, the environment pinned, and no `variables set` value in any argv."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opsconsole.providers.railway import _WRAPPER

STAND_IN = """\
import json, sys
data = "" if sys.stdin.isatty() else sys.stdin.read()
print(json.dumps({"argv": sys.argv[1:], "stdin": data}))
"""


def calls(tmp_path, script: str) -> tuple[int, list[dict], str]:
    cli = tmp_path / "railway"
    cli.write_text(f"#!{sys.executable}\n{STAND_IN}")
    cli.chmod(0o755)
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho TOOL \"$@\"\n")
    tool.chmod(0o755)
    done = subprocess.run(["bash", "-e", "-c", _WRAPPER + script], capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL, cwd=tmp_path,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin", "OPSCONSOLE_RAILWAY": str(cli),
                               "OPSCONSOLE_RAILWAY_PROJECT": "proj-1", "OPSCONSOLE_RAILWAY_ENVIRONMENT": "env-1"})
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    others = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("{"))
    return done.returncode, found, others


@pytest.mark.parametrize("line", [
    "railway variables set JWT=s3cr3t-value", 'railway variables --set "JWT=s3cr3t-value"',
    "railway variables --set=JWT=s3cr3t-value", "railway variables set --service=api JWT=s3cr3t-value",
    "railway variables set -s api JWT=s3cr3t-value", "railway variable set JWT=s3cr3t-value --skip-deploys",
])
def test_a_variables_set_value_goes_on_stdin_never_in_argv(tmp_path, line):
    code, found, _ = calls(tmp_path, line)
    assert code == 0 and len(found) == 1
    (call,) = found
    assert not any("s3cr3t" in arg for arg in call["argv"]) and call["stdin"] == "s3cr3t-value"
    assert call["argv"][1:4] == ["set", "JWT", "--stdin"] and call["argv"][-2:] == ["--environment", "env-1"]


def test_several_pairs_and_a_value_that_looks_like_a_flag(tmp_path):
    code, found, _ = calls(tmp_path, 'railway variables set A=first-1 MSG="use -e here"')
    assert code == 0
    assert [(c["argv"][2], c["stdin"], c["argv"][-2:]) for c in found] == [
        ("A", "first-1", ["--environment", "env-1"]), ("MSG", "use -e here", ["--environment", "env-1"])]


def test_a_named_environment_is_kept_and_others_are_pinned(tmp_path):
    code, found, _ = calls(tmp_path, "railway variables -e other\nrailway logs -f --service api\n"
                                     "railway redeploy --service api --yes\n")
    assert code == 0
    assert [c["argv"] for c in found] == [["variables", "-e", "other"],
                                          ["logs", "-f", "--service", "api", "--environment", "env-1"],
                                          ["redeploy", "--service", "api", "--yes"]]


def test_a_nested_railway_run_is_unwrapped_or_pinned(tmp_path):
    code, found, out = calls(tmp_path, "railway run tool migrate --noinput -e x\nrailway run -- tool two\n"
                                       "railway run --service db -- tool three\n")
    assert code == 0
    assert out.splitlines() == ["TOOL migrate --noinput -e x", "TOOL two"]  # the command's own flags untouched
    assert [c["argv"] for c in found] == [["run", "--project", "proj-1", "--environment", "env-1", "--service",
                                           "db", "--", "tool", "three"]]


def test_a_run_with_a_missing_flag_value_ends(tmp_path):
    code, found, _ = calls(tmp_path, "railway run --service || echo fallback\n")
    assert found == []  # nothing to run; it returns instead of looping
