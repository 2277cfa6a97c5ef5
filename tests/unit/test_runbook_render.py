"""Templating: a value lands as exactly one inert word, proven by running the result in bash."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from opsconsole import runbook
from opsconsole.errors import UserError
from opsconsole.runbook import Block

BASH = shutil.which("bash")

HOSTILE = [
    "; rm -rf /",
    "$(touch pwned)",
    "`touch pwned`",
    "x\ntouch pwned\n",
    "a'; touch pwned; echo '",
    'a"; touch pwned; echo "',
    "\\\"'$HOME'\"\\",
    "$'\\n' && touch pwned",
    "' \" ` $ \\ | & ; < > ( ) { } [ ] * ? ~ # !",
    "}}; touch pwned #",
    "-n",
    "",
    "caf\u00e9 \u2603 \t tab",
    "EOF\ntouch pwned\nEOF",
    "\r\ntouch pwned",
]

# Each template prints the value (and nothing else) through printf %s; a context per template.
TEMPLATES = [
    "printf %s {{ v }}",
    'printf %s "{{ v }}"',
    "printf %s '{{ v }}'",
    'printf %s "pre{{ v }}post"',
    "printf %s \"$(printf %s {{ v }})\"",
    "out=$(printf %s {{ v }}); printf %s \"$out\"",
    "X={{ v }}; printf %s \"$X\"",
    "printf %s $'{{ v }}'",
    "# {{ v }} shown in a comment\nprintf %s {{ v }}",
    "printf %s \"$(case a in a) printf %s {{ v }};; esac)\"",
    "if true; then\n  printf %s {{ v }}\nfi",
    "printf %s {{ v }} # trailing comment {{ v }}",
    "printf %s \"$( (printf %s {{ v }}) )\"",
    "printf %s \"$((1 + 1))\" >/dev/null; printf %s {{ v }}",
]


def sh(source: str) -> Block:
    return Block(lang="sh", role="run", confirm=None, timeout_s=None, retries=0, name=None, source=source,
                 line=10, attrs={})


def ops(source: str) -> Block:
    return Block(lang="ops", role="run", confirm=None, timeout_s=None, retries=0, name=None, source=source,
                 line=10, attrs={})


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A directory whose PATH has only `touch` and a fake `rm` that leaves a mark instead."""
    if BASH is None:
        pytest.skip("bash is not installed")
    root = tmp_path_factory.mktemp("render")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "touch").symlink_to(shutil.which("touch"))
    fake_rm = bin_dir / "rm"
    fake_rm.write_text('#!/bin/sh\necho "$@" > "$PWD/pwned"\n')
    fake_rm.chmod(0o755)
    return root


def run(sandbox: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([BASH, "-c", command], cwd=sandbox, capture_output=True, timeout=10,
                          env={"PATH": str(sandbox / "bin"), "HOME": "/home/nobody"})


def expected(template: str, value: str) -> str:
    if "pre{{" in template:
        return f"pre{value}post"
    # Command substitution drops trailing newlines: bash's rule, not a change of the value.
    return value.rstrip("\n") if "$(" in template and "$((" not in template else value


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:30] for v in HOSTILE])
def test_hostile_values_are_inert_in_every_context(sandbox, template, value):
    command = runbook.render(sh(template), {"v": value}, {})
    result = run(sandbox, command)
    pwned = sandbox / "pwned"
    try:
        assert not pwned.exists(), f"{command!r} ran something: {pwned.read_text()!r}"
    finally:
        pwned.unlink(missing_ok=True)
    assert result.returncode == 0, (command, result.stderr)
    assert result.stdout == expected(template, value).encode(), command


def test_recorded_values_are_quoted_too(sandbox):
    command = runbook.render(sh("printf %s {{ previous.replicas }}"), {}, {"replicas": "3; touch pwned"})
    assert run(sandbox, command).stdout == b"3; touch pwned"
    assert not (sandbox / "pwned").exists()


def test_plain_values_read_naturally():
    block = sh('kubectl scale deploy/{{ service }} --replicas={{ n }} && echo "scaled {{ service }}"')
    assert runbook.render(block, {"service": "worker", "n": 4}, {}) == \
        'kubectl scale deploy/worker --replicas=4 && echo "scaled "worker""'
    assert runbook.render(sh("echo {{ a }} {{ b }} {{ c }}"), {"a": True, "b": False, "c": None}, {}) == \
        "echo true false ''"


def test_literal_braces_stay():
    block = sh("docker inspect -f '{{.State.Status}}' api; echo \\{{ end }}")
    assert runbook.render(block, {}, {}) == "docker inspect -f '{{.State.Status}}' api; echo {{ end }}"


def test_ops_values_come_back_as_one_word():
    for value in ("plain", "two words", "it's", 'say "hi"', "back\\slash", "", "--replicas"):
        line = runbook.render(ops('deploy {{ v }} "x{{ v }}y" \'{{ v }}\''), {"v": value}, {})
        assert shlex.split(line) == ["deploy", value, f"x{value}y", value], line


def test_ops_values_may_not_break_the_line():
    with pytest.raises(UserError) as err:
        runbook.render(ops("deploy\n# note\ndeploy {{ v }}"), {"v": "api\nrestore-backup db --from x"}, {})
    assert err.value.line == 13 and "line break" in err.value.message


def test_ops_render_then_parse_gives_the_action():
    block = ops("scale {{ service }} --replicas {{ n }}\n")
    (action,) = runbook.parse_ops(block, runbook.render(block, {"service": "worker", "n": 7}, {}))
    assert (action.verb, action.service, action.replicas) == ("scale", "worker", 7)
    hostile = runbook.render(block, {"service": "worker; rm -rf /", "n": 7}, {}, path="book.md")
    with pytest.raises(UserError) as err:
        runbook.parse_ops(block, hostile, path="book.md")
    assert str(err.value) == "book.md:11: scale: argument SERVICE: not a valid service name: 'worker; rm -rf /'"


def test_missing_values_are_user_errors():
    with pytest.raises(UserError) as err:
        runbook.render(ops("\nscale w --replicas {{ previous.replicas }}"), {}, {}, path="b.md")
    assert str(err.value).startswith("b.md:12: {{ previous.replicas }}: nothing recorded replicas yet")
    with pytest.raises(UserError) as err:
        runbook.render(sh("echo {{ nope }}"), {}, {})
    assert "unknown placeholder {{ nope }}" in str(err.value)


@pytest.mark.parametrize("source, fragment", [
    ("cat <<EOF\n{{ v }}\nEOF", "here-document"),
    ("cat <<-'END'\n\tx {{ v }}\n\tEND", "here-document"),
    ("echo ${X:-{{ v }}}", "${...}"),
    ("echo `echo {{ v }}`", "backticks"),
    ("echo \"${{ v }}\"", "right after $"),
    ("echo '{{ v }}", "block ends inside single quotes"),
])
def test_contexts_that_cannot_be_made_safe_are_refused(source, fragment):
    with pytest.raises(UserError) as err:
        runbook.render(sh(source), {"v": "x"}, {})
    assert fragment in err.value.message


def test_heredoc_after_its_end_is_plain_code(sandbox):
    block = sh("cat <<EOF >/dev/null\nliteral $HOME\nEOF\nprintf %s {{ v }}")
    if shutil.which("cat"):
        os.symlink(shutil.which("cat"), sandbox / "bin" / "cat") if not (sandbox / "bin" / "cat").exists() else None
    command = runbook.render(block, {"v": "$(touch pwned)"}, {})
    assert run(sandbox, command).stdout == b"$(touch pwned)"
    assert not (sandbox / "pwned").exists()


def test_placeholders():
    block = sh("echo {{ a }} {{b}} {{ previous.replicas }} {{.Go}} \\{{ c }} {{ a | x }}")
    assert runbook.placeholders(block) == {"a", "b", "previous.replicas"}


# Templates the random-template property test once broke through; each must now refuse or stay inert.
FOUND = [
    "x=( ;{{ v }}case a in a) ",                       # a syntax error: bash resumes parsing on the next line
    ">&''{{ v }}",                                      # >& expands its word twice
    "true >&\\\n\t{{ v }}",                             # ... also after a line continuation
    "\\|# <<EOF\n;; esac{{ v }}\nEOF",                  # an escaped | does not start a word: no comment here
    " <<< $'{{ v }}\nEOF\n'",                           # <<< is a here-string, not a here-document
    "$((1+{{ v }}))",                                   # arithmetic evaluates a[$(cmd)]
    "[[ {{ v }} -eq 1 ]]",
    "let x={{ v }}",
    "a[{{ v }}]=1",
    "`\\\n|#;; esac&(${X:-echo (({{ v }}",             # backticks end at the value's own backtick
    " <<< x={{ v }}echo [[  <<EOF\n\\ <<< \n;; esac{{ v }} <<-'EOF'\nEOF\n",  # a here-document after `[[`
]
FUZZ_VALUE = "EOF\na[$(touch pwned)]$(touch pwned)`touch pwned`'; touch pwned; '\"; touch pwned; \"\ntouch pwned\n"


@pytest.mark.parametrize("template", FOUND)
def test_found_by_fuzzing(sandbox, template):
    try:
        command = runbook.render(sh(template), {"v": FUZZ_VALUE}, {})
    except UserError:
        return
    run(sandbox, command)
    assert not (sandbox / "pwned").exists(), command


def test_arithmetic_takes_whole_numbers(sandbox):
    block = sh("printf %s $(( {{ n }} * 2 )); [[ {{ n }} -gt 1 ]] && printf ' big'")
    assert run(sandbox, runbook.render(block, {"n": 21}, {})).stdout == b"42 big"
    with pytest.raises(UserError) as err:
        runbook.render(block, {"n": "a[$(touch pwned)]"}, {})
    assert "must be a whole number" in err.value.message
