"""The runbook format: front matter, params, steps, fence attributes and every problem with its line."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from opsconsole import masking, runbook
from opsconsole.errors import ConfigError, UserError
from opsconsole.runbook import InvalidRunbook

SPEC_EXAMPLE = '''\
---
title: Scale workers
summary: Add worker replicas when the queue backs up.
environments: [staging, production]
params:
  replicas: {type: int, min: 1, max: 20, default: 4}
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
'''


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "book.md") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


def problems(path: Path) -> list[tuple[int | None, str]]:
    _, found = runbook.inspect(path)
    return [(p.line, p.message) for p in found]


def only_problem(path: Path) -> tuple[int | None, str]:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


# --- the SPEC example -------------------------------------------------------------------------

def test_spec_example(tmp_path):
    path = tmp_path / "scale-workers.md"
    path.write_text(SPEC_EXAMPLE)
    book = runbook.load(path)
    assert (book.name, book.title, book.summary) == ("scale-workers", "Scale workers",
                                                     "Add worker replicas when the queue backs up.")
    assert book.environments == ("staging", "production")
    assert book.content_hash == hashlib.sha256(SPEC_EXAMPLE.encode()).hexdigest()
    (replicas,) = book.params
    assert (replicas.name, replicas.type, replicas.minimum, replicas.maximum, replicas.default, replicas.required,
            replicas.line) == ("replicas", "int", 1, 20, 4, False, 6)
    check, scale = book.steps
    assert (check.index, check.title, check.line) == (1, "Check the backlog", 11)
    assert [(b.lang, b.role, b.line) for b in check.blocks] == [("ops", "check", 12)]
    assert (scale.index, scale.title, scale.line, scale.prose) == (2, "Scale the worker service", 16,
                                                                   "Workers drain about 50 jobs/s each.")
    run, verify, rollback = scale.blocks
    assert (run.role, run.name, run.line) == ("run", "scale", 18)
    assert run.source == "scale worker --replicas {{ replicas }}\n"
    assert (verify.role, verify.timeout_s, verify.line) == ("verify", 300.0, 21)
    assert (rollback.role, rollback.line) == ("rollback", 24)
    assert runbook.placeholders(rollback) == {"previous.replicas"}


def test_fingerprint_follows_title_and_blocks_not_prose(write):
    original = runbook.load(write(SPEC_EXAMPLE)).steps[1].fingerprint()
    assert runbook.load(write(SPEC_EXAMPLE)).steps[1].fingerprint() == original
    reworded = SPEC_EXAMPLE.replace("Workers drain about 50", "Each worker drains about 50")
    assert runbook.load(write(reworded)).steps[1].fingerprint() == original
    changed = [
        SPEC_EXAMPLE.replace("--replicas {{ replicas }}", "--replicas {{ replicas }} "),
        SPEC_EXAMPLE.replace('"timeout": "5m"', '"timeout": "6m"'),
        SPEC_EXAMPLE.replace("## Scale the worker service", "## Scale the workers"),
        SPEC_EXAMPLE.replace('{"role": "rollback"}', '{"role": "rollback", "confirm": "typed"}'),
    ]
    for text in changed:
        assert runbook.load(write(text)).steps[1].fingerprint() != original, text


# --- front matter and params ------------------------------------------------------------------

def test_yaml_error_carries_the_file_line(write):
    path = write('''\
        ---
        title: Broken
        params:
          replicas: {type: int
          other: 1
        ---
        ## Step
        ```sh
        true
        ```
        ''')
    line, message = only_problem(path)
    assert line == 5 and "front matter is not valid YAML" in message
    with pytest.raises(InvalidRunbook) as err:
        runbook.load(path)
    assert str(err.value).startswith(f"{path}:5: front matter is not valid YAML")


def test_unclosed_and_non_mapping_front_matter(write):
    assert only_problem(write("---\ntitle: x\n\n## Step\n```sh\ntrue\n```\n"))[0] == 1
    line, message = only_problem(write("---\n- a\n- b\n---\n## Step\n```sh\ntrue\n```\n"))
    assert line == 2 and "mapping" in message


def test_param_problems_point_at_the_param(write):
    path = write('''\
        ---
        params:
          a: {type: float}
          b: {type: str, min: 1}
          c: {type: int, min: 5, max: 2}
          d: {type: int, min: 1, max: 3, default: 9}
          e: {type: secret, default: hunter2}
          f: {type: choice}
          g: {type: str, pattern: "("}
          h: {type: str, deafult: x}
          bad-name: str
          previous: str
          i: {type: str, default: 8080}
          j: {type: bool, default: maybe}
        ---
        ## Step
        ```sh
        true
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == list(range(3, 15))
    messages = [m for _, m in found]
    assert "unknown type 'float'" in messages[0]
    assert "min applies to int params only" in messages[1]
    assert "min 5 is above max 2" in messages[2]
    assert "default 9 is not allowed: 9 is above the maximum 3" in messages[3]
    assert "a secret cannot have a default" in messages[4] and "hunter2" not in messages[4]
    assert "choices" in messages[5]
    assert "not a valid regular expression" in messages[6]
    assert "unknown key 'deafult'" in messages[7]
    assert "bad-name" in messages[8] and "previous" in messages[9]
    assert "quote it" in messages[10]
    assert "true or false" in messages[11]


def test_param_shorthand_and_inference(write):
    book = runbook.load(write('''\
        ---
        params:
          service: str
          tier: {choices: [gold, silver], default: gold}
          dry_run: {type: bool, default: false}
          note: {type: str, required: false, description: "  free text  "}
        ---
        ## Step
        ```sh
        echo {{ service }} {{ tier }} {{ dry_run }} {{ note }}
        ```
        '''))
    service, tier, dry_run, note = book.params
    assert (service.type, service.required, service.default) == ("str", True, None)
    assert (tier.type, tier.choices, tier.default, tier.required) == ("choice", ("gold", "silver"), "gold", False)
    assert (dry_run.default, dry_run.required) == (False, False)
    assert (note.required, note.description) == (False, "free text")


def test_environments_must_be_names(write):
    assert only_problem(write("---\nenvironments: {a: 1}\n---\n## S\n```sh\ntrue\n```\n"))[0] == 2
    book = runbook.load(write("---\nenvironments: production\n---\n## S\n```sh\ntrue\n```\n"))
    assert book.environments == ("production",)


# --- fence attributes -------------------------------------------------------------------------

@pytest.mark.parametrize("info, role, confirm, timeout, retries, name", [
    ('sh', "run", None, None, 0, None),
    ('bash {"name": "x", "role": "verify", "timeout": 30, "retries": 2}', "verify", None, 30.0, 2, "x"),
    ('shell { name=y role=check confirm=typed timeout=1h30m }', "check", "typed", 5400.0, 0, "y"),
    ('zsh { role="verify" retries="3" timeout=250ms interactive=false }', "verify", None, 0.25, 3, None),
    ('BASH {"confirm": true, "excludeFromRunAll": true}', "run", "yes", None, 0, None),
    ('sh {"confirm": false, "timeout": "1.5"}', "run", "none", 1.5, 0, None),
    ('sh {}', "run", None, None, 0, None),
    ('sh script.sh', "run", None, None, 0, None),
])
def test_fence_attributes(write, info, role, confirm, timeout, retries, name):
    book = runbook.load(write(f"## Step\n```{info}\ntrue\n```\n"))
    (block,) = book.steps[0].blocks
    assert (block.lang, block.role, block.confirm, block.timeout_s, block.retries, block.name) == (
        "sh", role, confirm, timeout, retries, name)


def test_unknown_attributes_are_kept_but_ignored(write):
    book = runbook.load(write('## Step\n```sh {"name": "a", "cwd": "/tmp", "interactive": false}\ntrue\n```\n'))
    block = book.steps[0].blocks[0]
    assert block.attrs == {"name": "a", "cwd": "/tmp", "interactive": False}
    assert block.role == "run"


@pytest.mark.parametrize("info, expected", [
    ('sh {"role": "deploy"}', "role must be one of run, check, verify, rollback, watch, got 'deploy'"),
    ('sh { confirm=maybe }', "confirm must be one of none, yes, typed"),
    ('sh {"timeout": "soon"}', "timeout: not a duration: 'soon'"),
    ('sh {"timeout": 0}', "timeout: must be above zero"),
    ('sh {"timeout": -5}', "timeout: must be above zero"),
    ('sh {"retries": -1, "role": "verify"}', "retries must be a whole number"),
    ('sh {"retries": 2}', "retries applies to verify blocks only"),
    ('sh {"role": "verify",}', "fence attributes are not valid JSON"),
    ('sh {"role": "verify"', "do not end with }"),
    ('sh { role="verify }', "cannot read fence attributes"),
    ('sh role=verify', "fence attributes go inside braces"),
])
def test_bad_attribute_is_an_error_at_the_fence_line(write, info, expected):
    path = write(f"# Title\n\n## Step\n\nSome prose.\n\n```{info}\ntrue\n```\n")
    line, message = only_problem(path)
    assert line == 7
    assert expected in message


def test_every_problem_is_reported_in_line_order(write):
    path = write('''\
        ---
        params:
          n: {type: int}
        ---
        ## One
        ```sh {"role": "nope"}
        echo {{ m }}
        ```
        ## Two
        ```ops
        explode everything
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == [6, 7, 11]
    assert "role must be" in found[0][1]
    assert "unknown placeholder {{ m }} (params: n" in found[1][1]
    assert "unknown action 'explode'" in found[2][1]
    with pytest.raises(InvalidRunbook) as err:
        runbook.load(path)
    assert err.value.line == 6 and "(and 2 more" in str(err.value) and len(err.value.problems) == 3


def test_unclosed_fence_not_utf8_and_no_steps(write, tmp_path):
    line, message = only_problem(write("# T\n\n## Step\n```sh\ntrue\n\n## Next\n"))
    assert line == 4 and "never closed" in message
    bad = tmp_path / "latin1.md"
    bad.write_bytes("# T\n\n## Caf\xe9\n".encode("latin-1"))
    assert problems(bad) == [(3, "not UTF-8 text (a runbook is a Markdown file)")]
    assert only_problem(write("# Only prose\n\n```python\nprint(1)\n```\n"))[1].startswith("no steps")


def test_crlf_files_keep_their_lines(write, tmp_path):
    path = tmp_path / "crlf.md"
    path.write_bytes(SPEC_EXAMPLE.replace("\n", "\r\n").encode())
    book = runbook.load(path)
    assert [s.line for s in book.steps] == [11, 16]
    assert book.steps[1].blocks[2].line == 24


# --- placeholders and ops lines ---------------------------------------------------------------

def test_unknown_placeholder_points_at_the_body_line(write):
    path = write('''\
        ---
        params:
          service: str
        ---
        ## Deploy
        ```sh
        echo deploying {{ service }}
        echo to {{ envrionment }}
        ```
        ''')
    line, message = only_problem(path)
    assert line == 8
    assert message.startswith("unknown placeholder {{ envrionment }} (params: service")


def test_placeholder_syntax(write):
    path = write('''\
        ---
        params:
          n: int
        ---
        ## S
        ```sh
        docker inspect -f '{{.State.Status}}' api     # Go templates stay as they are
        kubectl get pods -o go-template='\\{{range .items}}\\{{.metadata.name}}\\{{end}}'
        echo {{n}} {{ n }} {{   n   }}
        echo {{ n | int }}
        echo {{ previous.replicas }} {{ previous.colour }}
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == [10, 11]
    assert found[0][1].startswith("not a placeholder: {{ n | int }}")
    assert "unknown placeholder {{ previous.colour }} (actions record: previous.backup, " in found[1][1]
    assert "previous.replicas, " in found[1][1]


def test_ops_lines_are_checked_with_typical_values(write):
    path = write('''\
        ---
        params:
          name: str
          n: {type: int, min: 2}
        ---
        ## Scale
        ```ops
        scale {{ name }} --replicas {{ n }}
        scale worker --replicas {{ name }}
        ```
        ## Mixed
        ```ops
        deploy api
        expect api is ok
        ```
        ## Verify that changes
        ```ops {"role": "verify"}
        deploy api
        ```
        ## Rollback that checks
        ```ops
        deploy api
        ```
        ```ops {"role": "rollback"}
        expect api is ok
        ```
        ## Empty
        ```ops
        # nothing here
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == [9, 12, 17, 24, 28]
    assert "scale: argument --replicas: must be a whole number from 0, got 'sample'" in found[0][1]
    assert "either actions or expects, not both" in found[1][1]
    assert "a verify block may only hold `expect` lines" in found[2][1]
    assert "rollback block undoes a change" in found[3][1]
    assert "empty ops block" in found[4][1]


def test_expect_only_ops_block_is_a_check(write):
    book = runbook.load(write("## S\n```ops\n# comment\nexpect db is ok\nexpect redis is not crit\n```\n"))
    assert book.steps[0].blocks[0].role == "check"
    items = runbook.parse_ops(book.steps[0].blocks[0], book.steps[0].blocks[0].source)
    assert [(e.member, e.op, e.value, e.line) for e in items] == [("db", "is", "ok", 4), ("redis", "is not", "crit", 5)]


def test_shell_contexts_where_a_value_cannot_be_made_inert(write):
    path = write('''\
        ---
        params:
          v: str
        ---
        ## S
        ```sh
        cat <<EOF
        hello {{ v }}
        EOF
        echo "${X:-{{ v }}}"
        echo `echo {{ v }}`
        echo ${{ v }}
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == [8, 10, 11, 12]
    assert "here-document" in found[0][1] and "${...}" in found[1][1]
    assert "backticks" in found[2][1] and "right after $" in found[3][1]


# --- steps ------------------------------------------------------------------------------------

def test_steps_from_sections_preamble_and_lone_blocks(write):
    book = runbook.load(write('''\
        # Title

        Intro text.

        ```sh
        echo preamble
        ```

        ## Before you start

        Have the VPN up.

        ## First

        ### Part a
        ```bash
        echo a
        ```
        ### Part b
        ```sh {"role": "verify"}
        echo b
        ```

        ## Notes

        Nothing to run here.
        '''))
    assert book.title == "Title" and book.intro == "Intro text."
    # Each heading that holds blocks is a step, at any level, with the headings above it as its context.
    assert [(s.title, s.context, s.line, len(s.blocks)) for s in book.steps] == [
        ("Title", (), 5, 1), ("Part a", ("First",), 15, 1), ("Part b", ("First",), 19, 1)]
    assert book.steps[1].breadcrumb == "First › Part a"
    assert book.steps[0].prose == "## Before you start\n\nHave the VPN up."
    assert book.steps[1].prose == ""
    assert book.steps[2].prose == "## Notes\n\nNothing to run here."


def test_block_mode_groups_verify_and_rollback_with_the_change(write):
    book = runbook.load(write('''\
        Run this:
        ```sh
        echo change
        ```
        ```sh {"role": "verify"}
        echo verify
        ```
        ```sh {"role": "rollback"}
        echo undo
        ```
        Then this:
        ```sh
        echo second
        ```
        '''))
    assert [(s.title, [b.role for b in s.blocks]) for s in book.steps] == [
        ("Step 1", ["run", "verify", "rollback"]), ("Step 2", ["run"])]
    assert book.intro == "Run this:" and book.steps[1].prose == "Then this:"


def test_a_step_of_only_rollback_blocks_is_refused(write):
    line, message = only_problem(write('## Undo\n```sh {"role": "rollback"}\necho undo\n```\n'))
    assert line == 1 and "only rollback" in message


def test_blocks_in_blockquotes_and_other_languages_are_prose(write):
    book = runbook.load(write('''\
        ## Step
        > Do not run this:
        > ```sh
        > rm -rf /var/lib/postgresql
        > ```

        ```python
        print("not a step")
        ```
        ```console
        $ echo output
        output
        ```
        ```sh
        echo real
        ```
        '''))
    (step,) = book.steps
    # A console block with a prompt is a copied session: its command runs, its output is what the doc expects.
    assert [(b.source.strip(), b.expected) for b in step.blocks] == [("echo output", "output"), ("echo real", "")]
    assert "rm -rf /var/lib/postgresql" in step.prose and 'print("not a step")' in step.prose


# --- finding runbooks -------------------------------------------------------------------------

def test_find(tmp_path):
    (tmp_path / "scale-workers.md").write_text(SPEC_EXAMPLE)
    (tmp_path / "README.md").write_text("# About these runbooks\n")
    assert runbook.find("scale-workers", tmp_path) == tmp_path / "scale-workers.md"
    assert runbook.find("scale-workers.md", tmp_path) == tmp_path / "scale-workers.md"
    assert runbook.find(str(tmp_path / "scale-workers.md"), Path("/nonexistent")) == tmp_path / "scale-workers.md"
    assert runbook.runbook_files(tmp_path) == [tmp_path / "scale-workers.md"]
    with pytest.raises(UserError) as err:
        runbook.find("scale", tmp_path)
    assert "no runbook 'scale'" in str(err.value) and "(runbooks: scale-workers)" in str(err.value)


# --- binding params ---------------------------------------------------------------------------

PARAMS = '''\
---
params:
  n: {type: int, min: 1, max: 20, default: 4}
  flag: {type: bool, default: false}
  tier: {type: choice, choices: [gold, silver]}
  name: {type: str, pattern: "[a-z]+", required: false}
  token: {type: secret}
---
## S
```sh
echo {{ n }} {{ flag }} {{ tier }} {{ name }} {{ token }}
```
'''


@pytest.fixture
def params_book(write):
    return runbook.load(write(PARAMS))


def test_bind_params_types_and_defaults(params_book):
    values = runbook.bind_params(params_book, {"tier": "gold", "token": "s3cr3t-value-1"})
    assert values == {"n": 4, "flag": False, "tier": "gold", "name": None, "token": "s3cr3t-value-1"}
    for text, expected in (("yes", True), ("TRUE", True), ("1", True), ("no", False), ("false", False), ("0", False)):
        assert runbook.bind_params(params_book, {"tier": "gold", "token": "x", "flag": text})["flag"] is expected
    assert runbook.bind_params(params_book, {"tier": "silver", "token": "x", "n": " 20 "})["n"] == 20


def test_secret_params_are_registered_and_never_echoed(params_book):
    runbook.bind_params(params_book, {"tier": "gold", "token": "tok-8f3a9c1e"})
    assert masking.mask("Authorization: tok-8f3a9c1e") == "Authorization: ***"
    book = params_book
    strict = runbook.Param("token", "secret", None, True, None, None, (), "[0-9]+", "", 7)
    book = runbook.Runbook(book.path, book.name, book.title, book.summary, None, (strict,), book.steps, "")
    with pytest.raises(UserError) as err:
        runbook.bind_params(book, {"token": "not-digits-77ab"})
    assert "not-digits-77ab" not in str(err.value) and "does not match" in str(err.value)


@pytest.mark.parametrize("given, expected", [
    ({"tier": "gold", "token": "x", "n": "0"}, ":3: param 'n': 0 is below the minimum 1"),
    ({"tier": "gold", "token": "x", "n": "21"}, ":3: param 'n': 21 is above the maximum 20"),
    ({"tier": "gold", "token": "x", "n": "four"}, ":3: param 'n': 'four' is not a whole number"),
    ({"tier": "gold", "token": "x", "flag": "maybe"}, ":4: param 'flag': 'maybe' is not true/false"),
    ({"tier": "bronze", "token": "x"}, ":5: param 'tier': 'bronze' is not one of gold, silver"),
    ({"tier": "gold", "token": "x", "name": "Bad Name"}, ":6: param 'name': 'Bad Name' does not match [a-z]+"),
    ({"token": "x"}, ":5: param 'tier' is required: -p tier=VALUE (choice of gold|silver)"),
    ({"tier": "gold"}, ":7: param 'token' is required"),
    ({"tier": "gold", "token": ""}, ":7: param 'token': is empty"),
    ({"tier": "gold", "token": "a\x00b"}, ":7: param 'token': holds a NUL character"),
])
def test_invalid_values_name_the_param_and_its_line(params_book, given, expected):
    with pytest.raises(UserError) as err:
        runbook.bind_params(params_book, given)
    assert expected in str(err.value)
    assert str(err.value).startswith(str(params_book.path))


def test_unknown_param_is_refused(params_book):
    with pytest.raises(UserError) as err:
        runbook.bind_params(params_book, {"tier": "gold", "token": "x", "replicas": "3"})
    assert str(err.value) == "unknown param 'replicas' for runbook book (it takes: n, flag, tier, name, token)"


def test_load_raises_config_errors_only(tmp_path):
    with pytest.raises(ConfigError) as err:
        runbook.load(tmp_path / "missing.md")
    assert "cannot read runbook" in str(err.value)


def test_only_int_params_in_arithmetic_and_shell_must_parse(write):
    path = write('''\
        ---
        params:
          n: int
          name: str
        ---
        ## S
        ```sh
        echo $(( {{ n }} + 1 ))
        [[ {{ name }} -gt 2 ]] && echo big
        ```
        ## T
        ```bash
        if true; then
          echo {{ name }}
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == [9, 15]
    assert "{{ name }} is used in arithmetic" in found[0][1] and "only int params" in found[0][1]
    assert found[1][1] == "shell syntax error: unexpected end of file"


# --- member params: a member of the environment, offered from it ----------------------------------------------

MEMBERS_TOML = '''\
[environments.local]
provider = "local"
[environments.local.services.api]
deploy = "true"
[environments.local.services.main]
kind = "postgres"
url = "postgresql://localhost:5432/main"
[environments.local.services.reports]
kind = "postgres"
url = "postgresql://localhost:5432/reports"
[environments.local.services.cache]
kind = "redis"
url = "redis://localhost:6379/0"
[environments.local.queues.emails]
kind = "bullmq"
url = "redis://localhost:6379/0"
'''


@pytest.fixture
def members_env():
    from opsconsole import config

    return config.parse(MEMBERS_TOML, None, Path("/x")).environment("local")


def test_member_params_parse_and_describe(write):
    path = write('''\
        ---
        params:
          db: {type: member, kind: postgres}
          health: {type: member, default: api}
          worker: {type: member, kind: service}
          queue: {type: member, kind: queue}
        ---
        ## Step
        ```sh
        echo {{ db }} {{ health }} {{ worker }} {{ queue }}
        ```
        ''')
    book = runbook.load(path)
    assert [(p.name, p.kind, p.describe(), p.required) for p in book.params] == [
        ("db", "postgres", "postgres member", True), ("health", None, "member", False),
        ("worker", "service", "service member", True), ("queue", "queue", "queue member", True)]


def test_member_param_problems(write):
    path = write('''\
        ---
        params:
          a: {type: member, kind: postgress}
          b: {type: str, kind: postgres}
          c: {type: member, default: 5432}
          d: {type: member, default: "not a name"}
        ---
        ## Step
        ```sh
        true
        ```
        ''')
    found = problems(path)
    assert [line for line, _ in found] == [3, 4, 5, 6]
    messages = [m for _, m in found]
    assert "unknown member kind 'postgress' (kinds: postgres, redis" in messages[0]
    assert "kind applies to member params only" in messages[1]
    assert "default must be text" in messages[2]
    assert "'not a name' is not a member name" in messages[3]


def test_member_params_default_to_the_environments_member_of_their_kind(write, members_env):
    book = runbook.load(write('''\
        ---
        params:
          db: {type: member, kind: postgres}
          cache: {type: member, kind: redis}
          health: {type: member, default: api}
          queue: {type: member, kind: queue}
        ---
        ## Step
        ```sh
        echo {{ db }} {{ cache }} {{ health }} {{ queue }}
        ```
        '''))
    # The only member of its kind; the front-matter default; never the first of several (two postgres here).
    assert runbook.bind_params(book, {"db": "main"}, members_env) == {"db": "main", "cache": "cache", "health": "api",
                                                                      "queue": "emails"}
    assert runbook.bind_params(book, {"db": "reports"}, members_env)["db"] == "reports"
    with pytest.raises(UserError, match="has several: name the postgres member with -p db=NAME "
                                        r"\(it has: main, reports\)"):
        runbook.bind_params(book, {}, members_env)
    # Without an environment (validate), a member param is a name and its default is used as it is.
    assert runbook.bind_params(book, {"db": "anything", "cache": "c", "queue": "q"})["health"] == "api"


def test_a_member_param_never_falls_back_to_another_member_where_that_is_a_guess(write, members_env):
    """`scale {{ worker }}` with `default: worker` on an environment without a worker must not scale the first
    service it finds; with several services and no default, nothing is picked either."""
    book = runbook.load(write('''\
        ---
        params:
          worker: {type: member, kind: service, default: worker}
          target: {type: member, kind: service}
        ---
        ## Step
        ```sh
        echo {{ worker }} {{ target }}
        ```
        '''))
    with pytest.raises(UserError) as caught:
        runbook.bind_params(book, {"target": "api"}, members_env)
    assert caught.value.message == ("param 'worker': environment 'local' has no 'worker': name the service with "
                                    "-p worker=NAME (it has: api, main, reports, cache)")
    with pytest.raises(UserError) as caught:
        runbook.bind_params(book, {"worker": "api"}, members_env)
    assert caught.value.message == ("param 'target': environment 'local' has several: name the service with "
                                    "-p target=NAME (it has: api, main, reports, cache)")


@pytest.mark.parametrize(("given", "message"), [
    ("db", "param 'db': 'db' is not a postgres member of environment 'local' (it has: main, reports)"),
    ("cache", "param 'db': 'cache' is a redis, not a postgres member (it has: main, reports)"),
    ("api", "param 'db': 'api' is a service, not a postgres member (it has: main, reports)"),
])
def test_a_member_param_names_a_member_of_its_kind(write, members_env, given, message):
    book = runbook.load(write('---\nparams:\n  db: {type: member, kind: postgres}\n---\n## S\n```sh\necho {{ db }}\n```\n'))
    with pytest.raises(UserError) as caught:
        runbook.bind_params(book, {"db": given}, members_env)
    assert caught.value.message == message and caught.value.line == 3


def test_an_environment_without_a_member_of_the_kind_says_so(write):
    from opsconsole import config

    env = config.parse('[environments.bare]\nprovider = "local"\n', None, Path("/x")).environment("bare")
    book = runbook.load(write('---\nparams:\n  db: {type: member, kind: postgres}\n---\n## S\n```sh\necho {{ db }}\n```\n'))
    with pytest.raises(UserError, match="environment 'bare' has no postgres member to name"):
        runbook.bind_params(book, {}, env)


# --- the search path: the user's runbooks first, then the shipped ones --------------------------------------------

def test_search_path_puts_the_users_folder_first_and_labels_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "runbooks"
    mine.mkdir()
    (mine / "deploy.md").write_text("# My deploy\n\n```sh\necho mine\n```\n")
    (mine / "only-mine.md").write_text("# Only mine\n\n```sh\necho mine\n```\n")
    shelves = runbook.search_path(mine)
    assert [(s.label, s.built_in) for s in shelves] == [("runbooks", False), ("built-in", True)]
    assert runbook.find("deploy", shelves) == mine / "deploy.md"  # the user's copy wins
    assert runbook.find("local-smoke", shelves) == runbook.SHIPPED / "local-smoke.md"
    listed = {path.stem: (shelf.label, hidden.label if hidden else None) for path, shelf, hidden in runbook.catalog(shelves)}
    assert listed["deploy"] == ("runbooks", "built-in") and listed["only-mine"] == ("runbooks", None)
    assert listed["local-smoke"] == ("built-in", None)
    with pytest.raises(UserError, match="no runbook 'nope' in runbooks or the built-in runbooks"):
        runbook.find("nope", shelves)


def test_a_missing_runbooks_folder_leaves_the_shipped_ones_unless_the_config_names_it(tmp_path):
    assert [s.label for s in runbook.search_path(tmp_path / "runbooks")] == ["built-in"]
    with pytest.raises(UserError, match="no runbooks directory at"):
        runbook.search_path(tmp_path / "typo", configured=True)


def test_the_secret_attribute_is_true_or_false(write):
    line, message = only_problem(write('## Make\n```sh {"secret": "maybe"}\necho x\n```\n'))
    assert line == 2 and message == "secret must be true or false, got 'maybe'"
    book = runbook.load(write('## Make\n```sh { secret=true }\necho x\n```\n', name="ok.md"))
    assert book.steps[0].blocks[0].generates_secret


def test_a_sections_text_leads_only_into_steps_of_its_own(write):
    """`## A` text (no blocks, a `### A.1` of notes) does not travel to `## B`'s first step."""
    book = runbook.load(write('''\
        # Doc

        ## A

        About A.

        ### A.1

        Notes on A.

        ## B

        About B.

        ### B.1
        ```sh
        echo b
        ```
        '''))
    (step,) = book.steps
    assert step.title == "B.1" and step.context == ("B",)
    assert step.prose == "About B." and "About A." not in step.prose


@pytest.mark.parametrize(("source", "follows"), [
    ("kubectl logs -f deploy/api\n", True), ("railway logs -f --service api\n", True),
    ("railway redeploy --yes\n\n# follow it\nrailway logs -f --service api\n", True),
    ("docker compose logs -f --tail 50 worker\n", True), ("watch -n 2 kubectl get pods\n", True),
    ("kubectl get pods -w\n", True), ("sudo tail -F /var/log/syslog\n", True),
    ('echo "now watch the dashboard"\n./migrate.sh\n', False),  # `watch` in a sentence
    ("tail -f app.log\n./migrate.sh\n", False),  # not the last command: stopping it would cut the rest short
    ("tail -f app.log | grep -m1 ready\n", False), ("kubectl get pods -w | head -3\n", False),  # ends on its own
    ("kubectl logs --tail 100 deploy/api\n", False),
])
def test_what_follows(source, follows):
    assert runbook.follows(source) is follows


def test_a_verify_block_never_follows(write):
    book = runbook.load(write('## Wait\n```sh\necho go\n```\n```sh {"role": "verify"}\ntail -f app.log\n```\n'))
    assert [b.follows for b in book.steps[0].blocks] == [False, False]
