"""Whatever opsconsole.toml and its .env files hold, loading them answers with a Config (whose environments
resolve) or with one ConfigError shown as one line, `path:line: what is wrong`, the line inside the file at
fault; never another exception and never a hang. And `${NAME}` takes the value the environment gives it,
exactly once, whatever that value holds."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from opsconsole import config, masking
from opsconsole.config import PROTECTIONS, PROVIDERS, Config
from opsconsole.errors import ConfigError
from opsconsole.thresholds import ALL_KINDS, ALL_METRICS, QUEUE_KINDS, SERVICE_KINDS, Threshold
from tests.budget import examples
from tests.mutation import mutated

HANG_S = 2.0  # CPU seconds (a busy machine stretches wall time): a config of a few KB loads in milliseconds,
#               seconds mean a scan slower than linear
SET, UNSET = "OPSFUZZ_SET", "OPSFUZZ_UNSET"  # the variables the generated configs use besides their own


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every example of a test: each writes its files over the last one's."""
    return tmp_path_factory.mktemp("config-fuzz")


@contextmanager
def isolated(**env: str | None) -> Iterator[None]:
    """`env` set (None: unset) in the process environment, and the secrets a load registers (passwords in
    generated URLs) kept away from the masking of every other test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(masking, "_secrets", set())
        for name, value in {"DATABASE_URL": None, "REDIS_URL": None, SET: "set-value", UNSET: None, **env}.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        yield


def file_lines(data: bytes) -> int:
    return data.count(b"\n") + 1  # TOML and .env lines end at \n (\r\n is \n to both)


def outcome(home: Path, data: bytes, dotenv: dict[str, bytes] | None = None) -> tuple[Config | ConfigError, list]:
    """Write the config (and .env files), load it and resolve each environment: the Config or the ConfigError
    loading it raised, and each environment or the ConfigError resolving it raised. Checks every error."""
    path = home / "opsconsole.toml"
    for old in home.glob(".env*"):
        old.unlink()
    path.write_bytes(data)
    files = {path: data}
    for name, content in (dotenv or {}).items():
        (home / name).write_bytes(content)
        files[home / name] = content
    started = time.process_time()
    results: list = []
    try:
        cfg: Config | ConfigError = config.load(str(path))
    except ConfigError as exc:
        check_error(exc, files)
        cfg = exc
    else:
        for name in cfg.environment_names:
            try:
                results.append(cfg.environment(name))
            except ConfigError as exc:
                check_error(exc, files)
                results.append(exc)
    elapsed = time.process_time() - started
    assert elapsed < HANG_S, f"loading took {elapsed:.1f} s of CPU"
    if isinstance(cfg, Config):
        check_config(cfg, [r for r in results if not isinstance(r, ConfigError)])
    return cfg, results


def check_error(exc: ConfigError, files: dict[Path, bytes]) -> None:
    shown = masking.printable(str(exc))  # what the CLI prints: \r and the other controls escaped
    assert "\n" not in shown, shown  # one line on a terminal (\u2028 is a line break to Python, not to one)
    assert exc.path is not None and Path(exc.path) in files, (exc.path, shown)
    prefix = f"{exc.path}:" if exc.line is None else f"{exc.path}:{exc.line}:"
    assert shown.startswith(prefix + " "), shown
    assert exc.message.strip(), shown
    if exc.line is not None:
        lines = file_lines(files[Path(exc.path)])
        assert 1 <= exc.line <= lines, (exc.line, lines, shown)


def check_threshold(threshold: Threshold) -> None:
    for level in (threshold.warn, threshold.crit):
        assert level is None or (isinstance(level, (int, float)) and not isinstance(level, bool)
                                 and not math.isnan(level) and level >= 0), threshold
    # (Not warn <= crit: refused within one table, but a layer setting one level over another's can leave the
    # warn above the crit it inherits, e.g. `latency_ms = 0` over redis' warn 50; the judge then says crit.)


def check_config(cfg: Config, environments: list[config.Environment]) -> None:
    """What a loaded config promises the code that uses it: the types and ranges the loader checked."""
    for seconds in (cfg.refresh, cfg.timeout):
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0, (cfg.refresh, cfg.timeout)
    assert 0 <= cfg.journal_retry <= 20
    assert cfg.default_environment in cfg.environment_names
    assert isinstance(cfg.bell, bool)
    assert cfg.theme is None or isinstance(cfg.theme, str)
    assert cfg.journal is None or isinstance(cfg.journal, str)
    assert all(isinstance(keys, str) and keys.strip() for keys in cfg.keymap.values())
    for env in environments:
        assert env.provider in PROVIDERS and env.protection in PROTECTIONS and isinstance(env.read_only, bool)
        for targets, kinds in ((env.services, SERVICE_KINDS), (env.queues, QUEUE_KINDS)):
            for target in targets:
                assert target.kind in ((None, *kinds) if kinds is SERVICE_KINDS else kinds), target
                if target.kind is None:
                    continue
                assert isinstance(target.url, str) and target.url.strip(), target
                for threshold in target.thresholds.values():
                    check_threshold(threshold)
                if target.kind == "tcp":  # what the tcp probe does with it
                    parts = urlsplit(target.url if "://" in target.url else "tcp://" + target.url)
                    assert parts.hostname and parts.port is not None, target.url


# --- TOML text from a model ------------------------------------------------------------------------


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if value == math.inf else "-inf" if value == -math.inf \
            else repr(value)
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # datetime, date, time


TEXT = st.characters(blacklist_categories=("Cs",))  # any character TOML can hold (escaped where it must be)
# (A union of alphabets is one alphabet to hypothesis, a few characters lost among a million: pieces instead.)
COMMENT = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=4)
                   | st.sampled_from(["\t", "\x85", "\u2028", "\u2029", "\x9b"]), max_size=4).map("".join)
SCALARS = st.one_of(st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(), st.text(TEXT, max_size=12),
                    st.datetimes(), st.dates(), st.times())
KEYS = st.text(TEXT, max_size=8)
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                   max_leaves=6)


def one_in(n: int, draw: st.DrawFn) -> bool:
    """True about once in `n` draws. (Hypothesis favours the low end of a range, and shrinks towards it: the
    low end is the usual case, so a failure shrinks towards a config with nothing unusual but its fault.)"""
    return draw(st.integers(0, n - 1)) == n - 1


@st.composite
def mostly(draw: st.DrawFn, good: st.SearchStrategy, wrong: st.SearchStrategy = ANY) -> object:
    """`good` nine times in ten, else `wrong`: most configs get past the first check, each check is reached.
    (Strategies are built once, here and below: building them inside a draw costs more than the load.)"""
    return draw(wrong if one_in(10, draw) else good)


NAMES = mostly(st.sampled_from(["local", "staging", "production", "db", "api", "emails", "a-b_1"])
               | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,7}", fullmatch=True),
               st.text(TEXT, max_size=6) | st.sampled_from(["x\n", "x\u2028", "-x", "", "x.y", "prod\x1b[2J"]))
VARIABLE_URLS = st.sampled_from(["${DATABASE_URL}", "${REDIS_URL:-redis://localhost:6379/0}", "${%s}" % SET,
                                 "${%s}" % UNSET, "${%s:-http://h/x}" % UNSET, "${%s:-}" % UNSET, "$%s" % SET])
SCHEMES = {kind: mostly(st.sampled_from(config._SCHEMES.get(kind, ("http",))),
                        st.sampled_from(["ftp", "", "HTTP", "redis", "x y"])) for kind in (*ALL_KINDS, None)}
LIBPQ = st.sampled_from(["host=db dbname=app", "host=a,b port=1", "dbname="])
USERS = st.sampled_from(["", "u@", "u:pw@", ":p%40ss@", "@"])
HOSTS = mostly(st.sampled_from(["localhost", "127.0.0.1", "db.internal", "[::1]"]),
               st.text(TEXT, max_size=6) | st.sampled_from(["[::1", "a,b", "", "h h"]))
PORTS = st.none() | mostly(st.integers(1, 65535).map(str),
                           st.integers(-5, 10 ** 6).map(str) | st.sampled_from(["x", "²", "١٢", "", "+1"]))
URL_PATHS = st.sampled_from(["", "/", "/0", "/health", "/q?x=1", "/%zz"])


@st.composite
def urls(draw: st.DrawFn, kind: object) -> str:
    if one_in(6, draw):
        return draw(VARIABLE_URLS)
    if kind == "postgres" and one_in(4, draw):
        return draw(LIBPQ)
    scheme = draw(SCHEMES[kind if kind in SCHEMES else None])
    netloc = draw(USERS) + draw(HOSTS)
    port = draw(PORTS)
    netloc += "" if port is None else ":" + port
    if kind == "tcp" and draw(st.booleans()):
        return netloc
    return f"{scheme}://{netloc}{draw(URL_PATHS)}" if scheme != "" else netloc + draw(URL_PATHS)


URLS = {kind: mostly(urls(kind)) for kind in (*ALL_KINDS, None)}
NUMBER = st.integers(-2, 2000) | st.floats() | st.sampled_from([10 ** 400, -(10 ** 400)])
THRESHOLD = mostly(NUMBER | st.fixed_dictionaries({}, optional={"warn": NUMBER, "crit": NUMBER}))
METRICS = mostly(st.sampled_from(sorted(ALL_METRICS)), st.sampled_from(["bogus", "latency", ""]))
MEMBER_THRESHOLDS = mostly(st.dictionaries(METRICS, THRESHOLD, max_size=3))  # a member's own
LAYER_THRESHOLDS = mostly(MEMBER_THRESHOLDS | st.dictionaries(st.sampled_from(ALL_KINDS), MEMBER_THRESHOLDS,
                                                              max_size=2))  # global or an environment's
KINDS = {"services": mostly(st.sampled_from(SERVICE_KINDS) | st.none(), st.sampled_from(QUEUE_KINDS) | ANY),
         "queues": mostly(st.sampled_from(QUEUE_KINDS) | st.none(), st.sampled_from(SERVICE_KINDS) | ANY)}
MEMBER_KEYS = st.lists(st.sampled_from(["ecs_service", "migrate", "compose_service", "deploy", "kidn"]), max_size=2)
SHORT_TEXT = mostly(st.text(TEXT, max_size=10))


@st.composite
def members(draw: st.DrawFn, group: str) -> dict:
    spec: dict = {}
    kind = draw(KINDS[group])
    if kind is not None:
        spec["kind"] = kind
    if not one_in(10, draw):
        spec["url"] = draw(URLS[kind if isinstance(kind, str) and kind in URLS else None])
    if one_in(4, draw):
        spec["thresholds"] = draw(MEMBER_THRESHOLDS if kind is not None else LAYER_THRESHOLDS)
    for key in draw(MEMBER_KEYS):
        spec[key] = draw(SHORT_TEXT)
    return spec


ENV_FIELDS = [(key, mostly(values, ANY | st.sampled_from(["", "Local", "aws "]))) for key, values in
              (("provider", st.sampled_from(PROVIDERS)), ("protection", st.sampled_from(PROTECTIONS)),
               ("read_only", st.booleans()))]
GROUPS = {group: mostly(st.dictionaries(NAMES, members(group), max_size=3)) for group in ("services", "queues")}
PROVIDER_OPTIONS = mostly(st.dictionaries(
    st.sampled_from(["region", "endpoint_url", "cluster", "namespace", "compose_file"]),
    st.text(TEXT, max_size=10) | VARIABLE_URLS, max_size=3))
SECRETS = mostly(st.dictionaries(NAMES, mostly(st.fixed_dictionaries(
    {"secret_id": st.text(TEXT, max_size=8)}, optional={"restart": st.lists(NAMES, max_size=2)})), max_size=2))


@st.composite
def environments(draw: st.DrawFn) -> dict:
    env: dict = {}
    for key, values in ENV_FIELDS:
        if draw(st.booleans()):
            env[key] = draw(values)
    for group, values in GROUPS.items():
        if draw(st.booleans()):
            env[group] = draw(values)
    if one_in(4, draw):
        env["thresholds"] = draw(LAYER_THRESHOLDS)
    if one_in(4, draw):
        env["provider_options"] = draw(PROVIDER_OPTIONS)
    if one_in(4, draw):
        env["secrets"] = draw(SECRETS)
    if one_in(20, draw):
        env[draw(st.sampled_from(["provder", "service", ""]))] = draw(ANY)
    return env


SETTINGS = {
    "refresh": st.floats(0.1, 60) | st.integers(1, 60),
    "timeout": st.floats(0.1, 10) | st.integers(1, 10),
    "journal_retry": st.floats(0, 20) | st.integers(0, 20),
    "runbooks": st.sampled_from(["runbooks", "ops/runbooks", ""]),
    "journal": st.sampled_from(["postgresql://u:pw@h/journal", "/tmp/j.sqlite"]),
    "theme": st.sampled_from(["textual-dark", "light"]),
    "bell": st.booleans(),
}
WRONG_NUMBERS = st.sampled_from([0, -1, 0.0, -0.0, math.nan, math.inf, -math.inf, 20.5, True, "5", 1e308, 10 ** 400])
SETTING_VALUES = {key: mostly(good) for key, good in SETTINGS.items()}
NUMERIC_SETTING_VALUES = {key: st.one_of(good, WRONG_NUMBERS) for key, good in SETTINGS.items()}
ENVIRONMENTS = mostly(st.dictionaries(NAMES, environments(), min_size=1, max_size=3), st.dictionaries(NAMES, ANY))
KEYMAPS = mostly(st.dictionaries(st.sampled_from(["refresh", "quit", "palette"]),
                                 mostly(st.sampled_from(["f5", "ctrl+r,f5", "q"]), st.sampled_from(["", " "]) | ANY),
                                 max_size=2))


@st.composite
def models(draw: st.DrawFn) -> dict:
    """An opsconsole.toml as Python values: mostly the right keys and types, some of each wrong."""
    doc: dict = {}
    table: dict = {}
    for key in SETTINGS:
        if one_in(4, draw):
            numeric = key in ("refresh", "timeout", "journal_retry") and one_in(3, draw)
            table[key] = draw(NUMERIC_SETTING_VALUES[key] if numeric else SETTING_VALUES[key])
    envs = draw(ENVIRONMENTS)
    if one_in(4, draw):
        names = list(envs) if isinstance(envs, dict) and envs else ["nowhere"]
        table["default_environment"] = draw(mostly(st.sampled_from(names)))
    if one_in(20, draw):
        table[draw(st.sampled_from(["refesh", "colour", ""]))] = draw(ANY)
    if table or draw(st.booleans()):
        doc["opsconsole"] = table if not one_in(10, draw) else draw(ANY)
    if one_in(4, draw):
        doc["thresholds"] = draw(LAYER_THRESHOLDS)
    if one_in(5, draw):
        doc["keymap"] = draw(KEYMAPS)
    if not one_in(10, draw):
        doc["environments"] = envs
    if one_in(30, draw):
        doc[draw(st.sampled_from(["environment", "services", ""]))] = draw(ANY)
    return doc


STYLES = st.sampled_from(["header", "inline", "dotted"])


@st.composite
def toml_lines(draw: st.DrawFn, model: dict) -> list[str]:
    """`model` as TOML lines, each table written as a [header] section, an inline table or dotted keys."""
    lines: list[str] = []

    def table(path: tuple[str, ...], node: dict) -> None:
        sections = []
        for key, value in node.items():
            style = draw(STYLES) if isinstance(value, dict) else "inline"
            if style == "header":
                sections.append((key, value))
            elif style == "dotted" and value and not any(isinstance(v, dict) for v in value.values()):
                lines.extend(f"{toml_key(key)}.{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
            else:
                lines.append(f"{toml_key(key)} = {toml_value(value)}")
        for key, value in sections:
            lines.append("[" + ".".join(toml_key(k) for k in path + (key,)) + "]")
            table(path + (key,), value)

    table((), model)
    return lines


def comment() -> st.SearchStrategy[str]:
    """A comment line: any text TOML allows there, line separators other than \\n among it."""
    return COMMENT.map(lambda text: "# " + text)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = draw(toml_lines(draw(models())))
    for _ in range(draw(st.integers(0, 3))):
        lines.insert(draw(st.integers(0, len(lines))), draw(comment()))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


# --- the properties -------------------------------------------------------------------------------


@settings(max_examples=examples(300))
@given(documents())
@example("# \u2028\n[environments.l]\nbogus = 1")  # KeyLines split lines at \u2028 too: line 4 of 3
@example("[opsconsole]\nrefresh = nan\n[environments.local]")  # loaded, then a nan timer
@example("[opsconsole]\ntimeout = inf\n[environments.local]")  # loaded, then int(inf) in the postgres probe
@example("[opsconsole]\nrefresh = 1%s\n[environments.local]" % ("0" * 400))  # OverflowError in float()
@example("[environments.l.queues.q]\nkind = 'sqs'\nurl = 'sqs://q'\nthresholds.depth = 1%s" % ("0" * 400))  # same
@example("[environments.l.queues.q]\nkind = 'sqs'\nurl = 'sqs://q'\nthresholds.depth.warn = nan")  # never alerts
@example("[environments.l]\nprovider_options.x = %s" % ("1" * 5000))  # ValueError from tomllib: 4300 digits at most
@example('[environments."e\\n"]\nprovider_options.x = "${%s}"' % UNSET)  # `$` let the name by: a 2-line error
def test_any_config_loads_or_is_one_line_with_its_line(home, text):
    with isolated():
        outcome(home, text.encode("utf-8"))


@settings(max_examples=examples(150))
@given(documents(), st.data())
def test_a_comment_line_moves_an_error_by_one_line_or_not_at_all(home, text, data):
    """The line of an error is the line at fault: a comment line put in before it (holding whatever a comment
    may, \\u2028 and \\x85 too) moves it down by one, and changes nothing else."""
    lines = text.split("\n")
    at = data.draw(st.integers(0, len(lines)), label="comment before line (0-based)")
    noted = "\n".join(lines[:at] + [data.draw(comment(), label="comment")] + lines[at:])
    with isolated():
        loaded, before = outcome(home, text.encode("utf-8"))
        moved, after = outcome(home, noted.encode("utf-8"))
    assert len(before) == len(after)
    for old, new in [(loaded, moved), *zip(before, after)]:
        if not isinstance(old, ConfigError):
            assert not isinstance(new, ConfigError), new
            continue
        assert isinstance(new, ConfigError) and new.message == old.message, (old, new)
        if old.line is not None:
            assert new.line == (old.line + 1 if old.line > at else old.line), (at, str(old), str(new))


BASES = [
    config.BUILTIN_TOML.encode(),
    b"""\
[opsconsole]
refresh = 5          # seconds between probe rounds
timeout = 1.0        # seconds a single probe may take
runbooks = "runbooks"

[environments.local]
provider = "compose"          # compose | railway | aws | kubernetes | local
protection = "open"           # open | confirm | typed
read_only = false

[environments.local.services.db]
kind = "postgres"             # postgres | redis | http | tcp
url = "${DATABASE_URL:-postgresql://u:pw@localhost:5432/app}"

[environments.local.services.api]
kind = "http"
url = "http://localhost:3801/health"

[environments.local.queues.emails]
kind = "bullmq"
url = "${REDIS_URL:-redis://localhost:6379/0}"
thresholds = { depth = { warn = 500, crit = 1000 } }
""",
    b"""\
[opsconsole]
journal = "${OPSFUZZ_SET}"
journal_retry = 5
default_environment = "production"
bell = false

[keymap]
refresh = "ctrl+r,f5"

[thresholds]
latency_ms = { warn = 150, crit = 300 }
postgres.connections_pct = 85
redis = { memory_pct = { warn = 60, crit = 75 } }

[environments.staging]
provider = "kubernetes"
protection = "confirm"
services.cache = { kind = "redis", url = "rediss://:secret@cache:6380/1" }
services.edge = { kind = "tcp", url = "edge.internal:443" }

[environments.production]
provider = "aws"
protection = "typed"
thresholds.failures = 5

[environments.production.provider_options]
region = "us-east-1"
endpoint_url = "${OPSFUZZ_UNSET:-http://localhost:4566}"
cluster = [
  ["a", 1],
  [ "b", 2 ],
]
profile = \"\"\"
[not.a.table]
key = "inside a string"
\"\"\"

[environments.production.services.worker]
ecs_service = "worker"

[environments.production.services.db]
url = 'postgresql://app@db:5432/app'
thresholds = { latency_ms = { warn = 100 }, replication_lag_s = 30 }

[environments.production.queues.jobs]
kind = "sqs"
url = "http://localhost:4566/000000000000/jobs"

[environments.production.secrets.JWT_SECRET]
secret_id = "app/jwt"
restart = ["api", "worker"]
""",
]
TOML_TOKENS = (b'"""', b"'''", b"[[", b"]]", b".", b" = ", b"nan", b"inf", b"-inf", b"1e400", b"-1", b"0", b"true",
               b"1979-05-27T07:32:00Z", b"\\u0000", b"\\n", b"\\U0010ffff", b"0x", b"_", b"+", b"kind = ",
               b'url = "', b"thresholds = {", b"[environments.", b"services.", b"\n[", b"]\n")


@settings(max_examples=examples(300))
@given(mutated(BASES, TOML_TOKENS))
@example(b'[environments.l]\nx = [\n[' + b" " * 3000 + b'\n1]]\n')  # tomlpos' header pattern: cubic, 12 s
@example(b'[environments.%s]\nprovider = "local"\n' % (b"pro" * 100))  # .env.<name>: ENAMETOOLONG from is_file()
def test_any_damaged_config_loads_or_is_one_line_with_its_line(home, data):
    with isolated():
        outcome(home, data)


@settings(max_examples=examples(150))
@given(st.lists(st.text(TEXT, max_size=8) | st.sampled_from(list("[]{}=\"'.#\n") + ['"""', "[[", "\r\n"]),
                max_size=30).map("".join) | st.binary(max_size=200))
def test_any_text_or_bytes(home, data):
    with isolated():
        outcome(home, data.encode("utf-8") if isinstance(data, str) else data)


@settings(max_examples=examples(60))
@given(st.integers(1, 3000), st.sampled_from(["[", "{ a = ", "[{ a = ", "{ a = ["]),
       st.sampled_from(["[environments.local]\nx = ", "[environments.local]\nprovider = \"local\"\n"
                                                        "[environments.local.provider_options]\nx = ",
                        "# \u2028 \x85\n[environments.local]\nx = "]))
@example(3000, "[", "# \u2028 \x85\n[environments.local]\nx = ")  # _deep_line split at \u2028 too: line 5 of 3
def test_values_nested_deeper_than_any_config_needs(home, depth, opener, prefix):
    closer = {"[": "]", "{ a = ": " }", "[{ a = ": " }]", "{ a = [": "] }"}[opener]
    text = prefix + opener * depth + "1" + closer * depth + "\n"
    with isolated():
        outcome(home, text.encode())


ENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
DOTENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


def dotenv_line(name: str, value: str) -> bytes:
    """NAME='value' as python-dotenv reads it back: single quotes, no ${} expansion, \\ and \' escaped."""
    return f"{name}='{value.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'\n".encode()


@settings(max_examples=examples(200))
@given(process=st.none() | ENV_TEXT, dotenv=st.none() | DOTENV_TEXT, dotenv_env=st.none() | DOTENV_TEXT,
       default=st.none() | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="}\x00"),
                                   max_size=10),
       before=st.text("ab :/-", max_size=4), after=st.text("ab :/-", max_size=4))
@example(process="${OPSFUZZ_SET}", dotenv=None, dotenv_env=None, default=None, before="", after="")
@example(process="", dotenv="from .env", dotenv_env=None, default=None, before="x", after="")
@example(process=None, dotenv="a", dotenv_env="b", default="c", before="", after="")
def test_a_variable_takes_the_value_the_environment_gives_it_once(home, process, dotenv, dotenv_env, default,
                                                                  before, after):
    """The process environment over `.env.<environment>` over `.env`; an empty or unset value takes the
    `:-default`; the value goes in as it is, never expanded again (it may hold `${...}` itself)."""
    name = "OPSFUZZ_VALUE"
    reference = "${%s%s}" % (name, "" if default is None else ":-" + default)
    text = (f"[environments.e]\nprovider = \"local\"\n[environments.e.provider_options]\n"
            f"migrate = {toml_string(before + reference + after)}\n")
    files = {}
    if dotenv is not None:
        files[".env"] = dotenv_line(name, dotenv)
    if dotenv_env is not None:
        files[".env.e"] = dotenv_line(name, dotenv_env)
    value = process if process is not None else dotenv_env if dotenv_env is not None else dotenv
    with isolated(**{name: process}):
        _, (env,) = outcome(home, text.encode(), files)
    if value:
        expected = value
    elif default is not None:
        expected = default
    elif value == "":
        expected = ""
    else:
        assert isinstance(env, ConfigError) and f"${{{name}}} is not set" in env.message, env
        assert env.line == 4 and Path(env.path) == home / "opsconsole.toml", str(env)
        return
    assert not isinstance(env, ConfigError), str(env)
    assert env.provider_options["migrate"] == before + expected + after


DOTENV_BASES = [b"A=1\n", b"B='two words'\nA=redis://h:1/0\n", b'C="line\\nbreak"\nexport D=${A}\n',
                b"# note\nE=\nA = 'redis://u:p@h'  # comment\n", b"\xef\xbb\xbfA=x\n"]


@settings(max_examples=examples(100))
@given(mutated(DOTENV_BASES, (b"export ", b"A=", b"${A}", b"$A", b"\\'", b"\\n")) | st.binary(max_size=60),
       st.sampled_from([".env", ".env.local"]))
@example(b"A\r=", ".env")  # python-dotenv ends a line at \r too: "line 2" of a file of one
def test_any_dotenv_file_gives_values_or_is_one_line_with_its_line(home, data, filename):
    text = b'[environments.local]\nprovider = "local"\n[environments.local.services.db]\nurl = "${A:-redis://h}"\n'
    with isolated(A=None):
        outcome(home, text, {filename: data})


def test_a_dotenv_error_names_the_line_at_fault(home):
    """Not the blank lines python-dotenv takes in before it, nor a line of its own that ends at a lone \r."""
    for text, line in ((b"A=1\n\n\n=x\n", 4), (b"A\r=\nB=2\n", 1), (b"A=1\r\n\r\n  =\n", 3)):
        with isolated():
            _, (error,) = outcome(home, b'[environments.local]\nprovider = "local"\n', {".env": text})
        assert isinstance(error, ConfigError) and error.line == line, (text, error)
