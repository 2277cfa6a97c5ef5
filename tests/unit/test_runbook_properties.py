"""Whatever the input, the parser and the templating answer with a runbook or with user errors that
carry a line, never with a crash; and a rendered value always comes back from bash unchanged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsconsole import runbook
from opsconsole.errors import ConfigError, UserError
from opsconsole.runbook import Block

PATH = Path("fuzz.md")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(data: bytes | str) -> None:
    book, problems = runbook.parse(data, PATH)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
    for problem in problems:
        assert isinstance(problem, ConfigError)
        assert problem.path == PATH
        assert problem.line is not None and 1 <= problem.line <= lines, (problem.line, lines, problem.message)
        assert "\n" not in problem.message
    if book is not None:
        for step in book.steps:
            assert step.blocks and step.index >= 1
            for block in step.blocks:
                assert 1 <= block.line <= lines
                assert block.lang in ("sh", "ops")
    if not problems:
        assert book is not None and book.steps


@FAST
@given(st.text())
def test_any_text(text):
    check(text)


@FAST
@given(st.binary(max_size=300))
def test_any_bytes(data):
    check(data)


LANGS = st.sampled_from(["sh", "bash", "shell", "zsh", "ops", "console", "python", "", "SH", "Ops"])
ATTRS = st.one_of(
    st.text(max_size=40).filter(lambda s: "\n" not in s and "`" not in s),
    st.dictionaries(st.sampled_from(["role", "confirm", "timeout", "retries", "name", "cwd"]),
                    st.one_of(st.text(max_size=8), st.integers(-3, 99), st.booleans(), st.floats(allow_nan=True),
                              st.none()), max_size=4).map(lambda d: __import__("json").dumps(d)),
    st.lists(st.tuples(st.sampled_from(["role", "confirm", "timeout", "retries", "x"]),
                       st.sampled_from(["run", "verify", "check", "rollback", "typed", "yes", "5m", "0", "2", '"a b"',
                                        "-1", "bogus"])),
             max_size=3).map(lambda kv: "{ " + " ".join(f"{k}={v}" for k, v in kv) + " }"),
)
BODY = st.lists(st.one_of(
    st.sampled_from(["echo hi", "expect db is ok", "scale worker --replicas {{ n }}", "deploy {{ name }}",
                     "echo {{ nope }}", "{{ previous.replicas }}", "cat <<EOF\n{{ n }}\nEOF", "echo '{{ name }}",
                     "restore-backup db --from {{ previous.backup }}", "expect emails.depth < {{ n }}", "# note",
                     "echo ${X:-{{ n }}}", "\\{{ end }}", "{{ n | int }}"]),
    st.text(max_size=30).filter(lambda s: "```" not in s)), max_size=4).map("\n".join)


@st.composite
def documents(draw) -> str:
    parts = []
    if draw(st.booleans()):
        params = draw(st.sampled_from([
            "params:\n  n: {type: int, min: 1, max: 9, default: 3}\n  name: str",
            "params:\n  n: {type: int, min: 5, max: 1}",
            "params: [1, 2]",
            "params:\n  name: {type: choice}",
            "title: [unclosed",
            "environments: production\nsummary: fine",
            draw(st.text(max_size=40)),
        ]))
        parts.append(f"---\n{params}\n" + ("---\n" if draw(st.booleans()) else ""))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["heading", "fence", "prose", "list", "quote", "html"]))
        if kind == "heading":
            title = draw(st.text(max_size=20).filter(lambda s: "\n" not in s))
            parts.append("#" * draw(st.integers(1, 4)) + " " + title)
        elif kind == "fence":
            fence = draw(st.sampled_from(["```", "~~~", "````"]))
            closed = draw(st.booleans()) or draw(st.booleans())
            info = f"{draw(LANGS)} {draw(ATTRS)}".rstrip()
            parts.append(f"{fence}{info}\n{draw(BODY)}\n" + (fence if closed else ""))
        elif kind == "prose":
            parts.append(draw(st.text(max_size=60)))
        elif kind == "list":
            parts.append(f"1. item\n   ```sh\n   {draw(BODY)}\n   ```\n   - nested")
        elif kind == "quote":
            parts.append(f"> ```sh\n> {draw(BODY)}\n> ```")
        else:
            parts.append("<details>\n<summary>x</summary>\n\n```bash\necho inside\n```\n</details>")
    return "\n\n".join(parts)


@FAST
@given(documents())
def test_markdownish_documents(text):
    check(text)


@FAST
@given(st.text(max_size=60).filter(lambda s: "\n" not in s and "\r" not in s and "`" not in s))
def test_any_attribute_string(attrs):
    book, problems = runbook.parse(f"## Step\n\n```sh {attrs}\ntrue\n```\n", PATH)
    assert all(p.line == 3 for p in problems), [(p.line, p.message) for p in problems]
    if not problems:
        (block,) = book.steps[0].blocks
        assert block.role in runbook.ROLES and block.confirm in (None, *runbook.CONFIRMS)
        assert block.timeout_s is None or block.timeout_s > 0


BOOK = runbook.parse(b"""---
params:
  n: {type: int, min: -5, max: 50}
  flag: {type: bool, default: true}
  tier: {type: choice, choices: [gold, silver]}
  name: {type: str, pattern: "[a-z][a-z0-9-]*", required: false}
  token: {type: secret, required: false}
---
## Step
```sh
echo {{ n }} {{ flag }} {{ tier }} {{ name }} {{ token }}
```
```ops {"role": "rollback"}
scale {{ name }} --replicas {{ n }}
```
""", PATH)[0]


@FAST
@given(st.dictionaries(st.sampled_from(["n", "flag", "tier", "name", "token", "other"]),
                       st.one_of(st.text(max_size=20), st.integers(), st.booleans()), max_size=5))
def test_any_param_values(given_values):
    try:
        values = runbook.bind_params(BOOK, given_values)
    except UserError as exc:
        assert not isinstance(exc, ConfigError) or exc.line is not None
        if exc.path is not None:
            assert exc.path == PATH and exc.line is not None
        return
    assert set(values) == {"n", "flag", "tier", "name", "token"}
    assert isinstance(values["n"], int) and -5 <= values["n"] <= 50
    assert isinstance(values["flag"], bool) and values["tier"] in ("gold", "silver")
    for block in BOOK.steps[0].blocks:
        try:
            runbook.render(block, values, {})
        except UserError as exc:
            assert exc.line is not None  # e.g. a value with a line break in an ops line


SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
CONTEXTS = ["printf %s {{ v }}", 'printf %s "{{ v }}"', "printf %s '{{ v }}'", "printf %s $'{{ v }}'",
            "X={{ v }}; printf %s \"$X\"", "# {{ v }}\nprintf %s {{ v }}"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@settings(max_examples=80, deadline=None)
@given(SAFE_TEXT, st.sampled_from(CONTEXTS))
def test_any_value_comes_back_from_bash_byte_for_byte(tmp_path_factory, value, template):
    block = Block("sh", "run", None, None, 0, None, template, 1, {})
    command = runbook.render(block, {"v": value}, {})
    workdir = tmp_path_factory.mktemp("bash")
    out = subprocess.run([shutil.which("bash"), "-c", command], capture_output=True, cwd=workdir, timeout=10,
                         env={"PATH": "/nonexistent"})
    assert out.stdout == value.encode("utf-8"), (command, out.stderr)
    assert list(workdir.iterdir()) == []


SHELL_PIECES = ["'", '"', "$(", ")", "${X:-", "}", "`", "#", "\n", " <<EOF\n", "EOF\n", "\\", "$'", "echo ", " ",
                ";", "case a in a) ", ";; esac", "(", "$((1+", "{{ v }}", "{{ v }}", "{{ v }}", "x=", "|", "&&",
                " <<-'EOF'\n", "\tEOF\n", " <<< ", "$", "{ ", "[[ ", " =~ ", "((", "\\\n", "<", ">", "&", "\t",
                ">&", " -eq ", "let ", "]] ", "a["]
HOSTILE = "EOF\nEND\na[$(touch pwned0)]$(touch pwned1)`touch pwned2`'; touch pwned3; '\"; touch pwned4; \"\ntouch pwned5\n"


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("touch") is None, reason="needs bash and touch")
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SHELL_PIECES), min_size=1, max_size=14).map("".join))
def test_any_shell_template_either_refuses_or_keeps_the_value_inert(tmp_path_factory, template):
    """The pieces hold no command of their own that creates a `pwned*` file (a redirection may
    create others): one can only come from the value escaping its quotes."""
    block = Block("sh", "run", None, None, 0, None, template, 1, {})
    try:
        command = runbook.render(block, {"v": HOSTILE}, {})
    except UserError:
        return
    workdir = tmp_path_factory.mktemp("inert")
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "touch").symlink_to(shutil.which("touch"))
    subprocess.run([shutil.which("bash"), "-c", command], cwd=workdir, capture_output=True, timeout=10,
                   stdin=subprocess.DEVNULL, env={"PATH": str(bin_dir)})
    assert [p.name for p in workdir.iterdir() if p.name.startswith("pwned")] == [], command
