"""Whatever the input, the parser and the templating answer with a runbook or with user errors that
carry a line, never with a crash; and a rendered value always comes back from bash unchanged."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opsconsole import masking, runbook
from opsconsole.errors import ConfigError, UserError
from opsconsole.runbook import Block
from tests.budget import examples
from tests.mutation import mutated

PATH = Path("fuzz.md")
FAST = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
HANG_S = 2.0  # CPU seconds, and SH_BLOCK_S more for each shell block's `bash -n`: a runbook parses in milliseconds
SH_BLOCK_S = 0.2


def check(data: bytes | str) -> tuple[ConfigError, ...]:
    started = time.process_time()  # not wall time, which a busy machine stretches
    book, problems = runbook.parse(data, PATH)
    elapsed = time.process_time() - started
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    fences = text.count("```") + text.count("~~~")
    assert elapsed < HANG_S + SH_BLOCK_S * fences, f"parsing took {elapsed:.1f} s of CPU ({fences} fences)"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
    for problem in problems:
        assert isinstance(problem, ConfigError)
        assert problem.path == PATH
        assert problem.line is not None and 1 <= problem.line <= lines, (problem.line, lines, problem.message)
        shown = masking.printable(str(problem))  # what `runbooks validate` prints: \r and other controls escaped
        assert "\n" not in shown and shown.startswith(f"{PATH}:{problem.line}: "), shown  # one terminal line
    if book is not None:
        for step in book.steps:
            assert step.blocks and step.index >= 1
            for block in step.blocks:
                assert 1 <= block.line <= lines
                assert block.lang in ("sh", "ops")
    if not problems:
        assert book is not None and book.steps
    return problems


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


SPEC_EXAMPLE = b"""---
title: Scale workers
summary: Add worker replicas when the queue backs up.
environments: [staging, production]
params:
  replicas: {type: int, min: 1, max: 20, default: 4}
  tier: {type: choice, choices: [gold, silver]}
  token: secret
---

# Scale workers

## Check the backlog
```ops {"role": "check"}
expect emails.depth > 1000
```

## Scale the worker service
Workers drain about 50 jobs/s each.
```ops {"name": "scale"}
scale worker --replicas {{ replicas }}
```
```ops {"role": "verify", "timeout": "5m"}
expect emails.depth < 1000
```
```ops {"role": "rollback"}
scale worker --replicas {{ previous.replicas }}
```

## Tell the channel
```sh { name=notify confirm=yes timeout=30s }
echo "scaled to {{ replicas }} ({{ tier }})" | tee -a "$HOME/ops.log"
```
"""
README_STYLE = b"""# Service

Run it locally:

```bash
make run
```

> ```sh
> echo quoted: shown, never run
> ```

1. Then:
   ~~~shell {"role": "verify", "retries": 2}
   curl -fsS localhost:3801/health
   ~~~
"""
SHIPPED = [p.read_bytes() for p in sorted((Path(__file__).resolve().parents[2] / "opsconsole" / "shipped_runbooks").glob("*.md"))
           if p.name in ("scale-workers.md", "rotate-secret.md", "local-smoke.md", "deploy.md")]
RUNBOOK_TOKENS = (b"---\n", b"...\n", b"\n## ", b"\n# ", b"```", b"~~~", b"````", b"```sh ", b"```ops ", b"> ",
                  b"   ", b"{{ ", b"}}", b"\\{{", b"{{ previous.", b"{{ replicas }}", b"{ role=", b'{"role": ',
                  b"verify", b"rollback", b"typed", b"timeout", b"retries", b"params:\n  ", b"type: ", b"- ", b"&a ",
                  b"*a", b"!!python/object ", b"<<EOF\n", b"$((", b"`", b"$(", b"\\\n", b"expect ", b"scale ")


@FAST
@given(mutated([SPEC_EXAMPLE, README_STYLE, *SHIPPED], RUNBOOK_TOKENS))
def test_any_damaged_runbook(data):
    check(data)


def front_matter_comment() -> st.SearchStrategy[str]:
    """A YAML comment line; line separators other than \n may end it (YAML breaks lines there too)."""
    return st.tuples(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                           blacklist_characters="\ufeff\x85"), max_size=10),
                     st.sampled_from(["", "\x85", "\u2028", "\u2029"])).map(lambda t: "# " + t[0] + t[1])


@FAST
@given(documents() | mutated([SPEC_EXAMPLE, *SHIPPED], RUNBOOK_TOKENS).map(lambda b: b.decode("utf-8", "replace")),
       front_matter_comment())
@example("---\nparams:\n  n: {type: int\n---\n## s\n```sh\necho {{ n }}\n```\n", "# \u2028")
@example("---\n0\n---\n", "# ")  # "must be a mapping" was always line 2
@example("---\n" + "[" * 3000 + "\n---\n", "# ")  # and so was "nested too deeply"
def test_a_comment_in_the_front_matter_moves_every_problem_by_one_line(text, comment):
    """The line of a problem is the line at fault: a comment line put in at the top of the front matter (holding
    whatever a comment may, \u2028 and \x85 too) moves every later problem down by one, and changes nothing else."""
    if not text.startswith("---\n"):
        text = "---\n" + text
    before = check(text)
    after = check(text[:4] + comment + "\n" + text[4:])
    moved = sorted((p.message, p.line + 1 if p.line > 1 else p.line) for p in before)
    assert sorted((p.message, p.line) for p in after) == moved


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
@settings(max_examples=examples(80), deadline=None)
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
@settings(max_examples=examples(300), deadline=None)
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
