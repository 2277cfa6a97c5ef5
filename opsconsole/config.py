"""opsconsole.toml: discovery, `.env` values, `${NAME}` interpolation and validation.

Structure is validated when the file loads; variables are resolved per environment when that
environment is used, so an unset production token does not stop `check --env local`.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opsconsole import config_schema as schema
from opsconsole import masking, thresholds
from opsconsole.errors import ConfigError
from opsconsole.thresholds import QUEUE_KINDS, SERVICE_KINDS, Threshold, ThresholdError
from opsconsole.tomlpos import KeyLines

PROVIDERS = ("compose", "railway", "aws", "kubernetes", "local")
PROTECTIONS = ("open", "confirm", "typed")
BUILTIN = "<built-in config>"
JOURNAL_RETRY_S = 10.0  # default [opsconsole] journal_retry

BUILTIN_TOML = """\
[environments.local]
provider = "local"
protection = "open"

[environments.local.services.postgres]
kind = "postgres"
url = "${DATABASE_URL:-postgresql://localhost:5432/postgres}"

[environments.local.services.redis]
kind = "redis"
url = "${REDIS_URL:-redis://localhost:6379/0}"
"""

_OPSCONSOLE_KEYS = {"refresh", "timeout", "runbooks", "journal", "journal_retry", "default_environment", "theme",
                    "bell"}
_ENV_KEYS = {"provider", "protection", "read_only", "services", "queues", "thresholds", "provider_options", "secrets"}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*\Z")  # \Z: `$` also matches before a final "\n"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
# Deeper than any real config needs (environments.X.services.Y.thresholds.depth.warn is 7); walking a deeper
# one recursively would overflow Python's stack.
_MAX_DEPTH = 32

# URL schemes each kind accepts; the kind is inferred from the scheme when left out.
_SCHEMES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres", "postgresql"),
    "redis": ("redis", "rediss", "unix"),
    "http": ("http", "https"),
    "tcp": ("tcp",),
    "bullmq": ("redis", "rediss", "unix"),
    "bull": ("redis", "rediss", "unix"),
    "redis-list": ("redis", "rediss", "unix"),
    "rabbitmq": ("http", "https"),
    "sqs": ("http", "https", "sqs"),
}
_INFER = {"postgres": "postgres", "postgresql": "postgres", "redis": "redis", "rediss": "redis",
          "http": "http", "https": "http", "tcp": "tcp"}


@dataclass(frozen=True)
class Target:
    """A service or queue of an environment. `kind` is None for a deployable service with no probe."""

    name: str
    group: str  # "service" or "queue"
    kind: str | None
    url: str | None
    thresholds: Mapping[str, Threshold]
    options: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = None

    @property
    def probed(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class Environment:
    name: str
    provider: str
    protection: str
    read_only: bool
    services: tuple[Target, ...]
    queues: tuple[Target, ...]
    provider_options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Everything probed, services first."""
        return tuple(t for t in self.services + self.queues if t.probed)

    @property
    def is_production(self) -> bool:
        return self.protection == "typed" or self.name.lower() in ("production", "prod")


@dataclass(frozen=True)
class Config:
    path: Path | None
    refresh: float
    timeout: float
    runbooks: Path
    journal: str | None
    journal_retry: float  # seconds a run keeps retrying an unreachable journal before it stops
    default_environment: str
    theme: str | None  # None: the default theme
    bell: bool  # ring the terminal bell when a member turns crit
    keymap: Mapping[str, str]  # binding id -> keys, checked against the app's bindings when the TUI starts
    raw: Mapping[str, Any]
    lines: KeyLines
    base_dir: Path

    @property
    def source(self) -> str:
        return str(self.path) if self.path else BUILTIN

    @property
    def runbooks_configured(self) -> bool:
        """Whether [opsconsole] runbooks names the folder (a missing one is then an error, not an empty shelf)."""
        return isinstance(self.raw.get("opsconsole"), Mapping) and "runbooks" in self.raw["opsconsole"]

    @property
    def environment_names(self) -> tuple[str, ...]:
        return tuple(self.raw["environments"])

    def summary(self, name: str) -> Mapping[str, Any]:
        """An environment's unresolved table (provider, protection, ...), for listings."""
        return self.raw["environments"][name]

    def known_environment(self, name: str) -> str:
        """`name`, or ConfigError when the config has no such environment (a typo must never pass quietly)."""
        if name not in self.raw["environments"]:
            known = ", ".join(self.environment_names)
            raise ConfigError(f"unknown environment {name!r} (known: {known})", self.source)
        return name

    def environment(self, name: str | None = None) -> Environment:
        """Resolve one environment: `.env` values, `${NAME}` interpolation, URL checks."""
        name = self.known_environment(name or self.default_environment)
        values = load_env_values(self.base_dir, name)
        table = self.raw["environments"][name]
        resolved = _interpolate(table, ("environments", name), values, self)
        layers = [self.raw.get("thresholds", {}), table.get("thresholds", {})]

        provider_options = resolved.get("provider_options", {})
        aws_defaults = {k: provider_options[k] for k in ("region", "endpoint_url", "profile") if k in provider_options}

        def members(group_key: str, group: str, kinds: tuple[str, ...]) -> tuple[Target, ...]:
            out = []
            for member, spec in resolved.get(group_key, {}).items():
                if spec.get("kind") == "sqs":
                    spec = {**aws_defaults, **spec}  # the environment's AWS settings, unless the queue says otherwise
                path = ("environments", name, group_key, member)
                out.append(self._target(member, group, kinds, spec, path, layers))
            return tuple(out)

        return Environment(
            name=name,
            provider=resolved.get("provider", "local"),
            protection=resolved.get("protection", "open"),
            read_only=bool(resolved.get("read_only", False)),
            services=members("services", "service", SERVICE_KINDS),
            queues=members("queues", "queue", QUEUE_KINDS),
            provider_options=resolved.get("provider_options", {}),
            secrets=resolved.get("secrets", {}),
        )

    def _target(self, name: str, group: str, kinds: tuple[str, ...], spec: Mapping[str, Any],
                path: tuple[str, ...], layers: list[Mapping[str, Any]]) -> Target:
        kind = spec.get("kind")
        url = spec.get("url")
        if url is not None and (not isinstance(url, str) or not url.strip()):
            self._fail("url must be a non-empty string", *path, "url")
        if kind is None and url is not None:
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            kind = _INFER.get(scheme)
            if kind is None or kind not in kinds:
                self._fail(f"cannot tell the kind of {group} {name!r} from its url; add kind = "
                           f"({' | '.join(kinds)})", *path)
        if kind is not None and url is None:
            self._fail(f"{group} {name!r} of kind {kind} needs a url", *path)
        if kind is not None:
            _check_url(self, kind, url, path + ("url",))
            masking.register_url(url)
        own = spec.get("thresholds")
        return Target(
            name=name,
            group=group,
            kind=kind,
            url=url,
            thresholds=thresholds.resolve(kind, layers, own) if kind else {},
            options=spec,
            line=self.lines.line(*path),
        )

    def _fail(self, message: str, *path: str) -> None:
        raise ConfigError(message, self.source, self.lines.line(*path))


def _check_url(config: Config, kind: str, url: str, path: tuple[str, ...]) -> None:
    if kind == "postgres" and "://" not in url and "=" in url:
        return  # a libpq keyword string: host=... dbname=...
    if kind == "tcp" and "://" not in url:
        url = "tcp://" + url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    allowed = _SCHEMES[kind]
    if scheme not in allowed:
        shown = masking.redact_url(url)
        config._fail(f"{kind} url must start with {' or '.join(s + '://' for s in allowed)}, got {shown!r}", *path)
    try:
        parts = urlsplit(url)
        if "," not in parts.netloc:  # libpq's host1:5432,host2:5432 is not one URL authority
            parts.port
    except ValueError as exc:  # a port out of range or not a number, a broken [IPv6] host
        why = str(exc)
        config._fail(f"{kind} url {masking.redact_url(url)!r}: {why[:1].lower() + why[1:]}", *path)
    if kind == "tcp":
        hostport = url.split("://", 1)[1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            config._fail(f"tcp url needs host:port, got {hostport!r}", *path)


def load_env_values(base_dir: Path, environment: str | None) -> dict[str, str]:
    """`.env`, then `.env.<environment>` over it (unless None), then the process environment over both."""
    values: dict[str, str] = {}
    for filename in (".env", f".env.{environment}") if environment is not None else (".env",):
        path = base_dir / filename
        try:
            present = path.is_file()
        except OSError as exc:
            import errno

            if exc.errno != errno.ENAMETOOLONG:  # an environment name too long for a file name: no such file
                raise ConfigError(f"cannot read: {exc.strerror or exc}", path) from None
            present = False
        if present:
            values.update(env_file_values(path))
    values.update(os.environ)
    return values


_env_files: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}


def env_file_values(path: Path) -> dict[str, str]:
    """A `.env` file's variables as python-dotenv's `dotenv_values` reads them (`${NAME}` expanded from the file's
    earlier lines, then the process environment), parsed once per change of the file: commands, probes and
    screens ask often.

    A line python-dotenv would skip with a warning of its own is a mistake with its line: an unclosed quote there
    silently swallows the lines after it. (python-dotenv's own `dotenv_values` expands in time quadratic in the
    number of lines: 100,000 lines took minutes; this is linear, with the same rules.)"""
    import io
    from collections import ChainMap

    from dotenv.parser import parse_stream
    from dotenv.variables import parse_variables

    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path) from None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _env_files.get(path)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1])
    text = _read_utf8(path, "cannot read", "a .env file holds NAME=value lines")
    read: dict[str, str | None] = {}  # None: a bare `NAME`, which python-dotenv reads as unset (and `${NAME}` as "")
    # `${NAME}` is the file's own earlier NAME first, then the process environment's (dotenv_values' override=True)
    resolved_from: ChainMap[str, str | None] = ChainMap(read, os.environ)  # type: ignore[arg-type]
    at = 0  # where the binding starts in `text`
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # Not binding.original.line: python-dotenv counts a lone \r as a line end too, and starts the
            # binding at the blank lines before the line at fault.
            start = at + len(binding.original.string) - len(binding.original.string.lstrip())
            raise ConfigError("cannot parse this line: expected NAME=value (with any quote closed)", path,
                              text.count("\n", 0, start) + 1)
        at += len(binding.original.string)
        if binding.key is None:
            continue
        value = binding.value
        if value is not None and "$" in value:
            value = "".join(atom.resolve(resolved_from) for atom in parse_variables(value))  # type: ignore[arg-type]
        read[binding.key] = value
    values = {k: v for k, v in read.items() if v is not None}
    _env_files[path] = (stamp, dict(values))
    return values


def _interpolate(node: Any, path: tuple[str, ...], values: Mapping[str, str], config: Config) -> Any:
    if isinstance(node, str):
        def substitute(m: re.Match[str]) -> str:
            name, default = m["name"], m["default"]
            value = values.get(name)
            if value:
                return value
            if default is not None:
                return default
            if value == "":
                return value
            config._fail(f"${{{name}}} is not set: define it in the environment, in .env or "
                         f".env.{path[1]} beside the config, or write ${{{name}:-default}}", *path)
            return ""
        return _VARIABLE.sub(substitute, node)
    if isinstance(node, Mapping):
        return {k: _interpolate(v, path + (k,), values, config) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, path, values, config) for v in node]
    return node


def discover(explicit: str | None) -> Path | None:
    """`--config`, `$OPSCONSOLE_CONFIG`, `./opsconsole.toml`, the user config dir; None = built-in."""
    for source, candidate in (("--config", explicit), ("OPSCONSOLE_CONFIG", os.environ.get("OPSCONSOLE_CONFIG"))):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(f"config file not found (from {source})", path)
            return path
    local = Path("opsconsole.toml")
    if local.is_file():
        return local
    from platformdirs import user_config_dir

    user = Path(user_config_dir("opsconsole")) / "config.toml"
    if user.is_file():
        return user
    return None


def load(explicit: str | None = None) -> Config:
    path = discover(explicit)
    if path is None:
        return parse(BUILTIN_TOML, None, Path.cwd())
    return parse(_read_utf8(path, "cannot read config", "a config is a TOML file"), path, path.resolve().parent)


def _read_utf8(path: Path, cannot: str, what_it_is: str) -> str:
    """A file's text, or one ConfigError: `cannot: why` when unreadable, the line of the first bad byte if not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{cannot}: {exc.strerror or exc}", path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({what_it_is})", path, data.count(b"\n", 0, exc.start) + 1) from None


def parse(text: str, path: Path | None, base_dir: Path) -> Config:
    """Parse and validate the structure of a config text."""
    source = str(path) if path else BUILTIN
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if "end of document" in message:
            line = line or text.count("\n") + 1
        raise ConfigError(f"TOML syntax error: {message[:1].lower() + message[1:]}", source, line) from None
    except ValueError as exc:  # not a TOMLDecodeError: int() refusing an integer of more than 4300 digits
        m = re.search(r"[0-9_]{%d,}" % sys.get_int_max_str_digits(), text)
        if m is None:
            raise ConfigError(f"TOML syntax error: {exc}", source) from None
        raise ConfigError(f"an integer of more than {sys.get_int_max_str_digits()} digits", source,
                          text.count("\n", 0, m.start()) + 1) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"arrays or inline tables nested deeper than {_MAX_DEPTH} levels", source,
                          nesting_line(text, _MAX_DEPTH)) from None
    lines = KeyLines(text)

    def fail(message: str, *key: str) -> None:
        raise ConfigError(message, source, lines.line(*key))

    deep = _too_deep(raw)
    if deep is not None:
        fail(f"tables or arrays nested deeper than {_MAX_DEPTH} levels", *deep)

    unknown = sorted(set(raw) - {"opsconsole", "environments", "thresholds", "keymap"})
    if unknown:
        fail(f"unknown section {unknown[0]!r} (known: opsconsole, environments, thresholds, keymap)", unknown[0])

    settings = raw.get("opsconsole", {})
    if not isinstance(settings, Mapping):
        fail("[opsconsole] must be a table", "opsconsole")
    for key in sorted(set(settings) - _OPSCONSOLE_KEYS):
        fail(f"unknown setting {key!r} in [opsconsole] (known: {', '.join(sorted(_OPSCONSOLE_KEYS))})", "opsconsole", key)

    def positive(key: str, default: float) -> float:
        value = settings.get(key, default)
        # nan and inf are floats too (TOML has them), and an integer of 400 digits is no float at all
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= sys.float_info.max:
            fail(f"{key} must be a positive number of seconds, got {value!r}", "opsconsole", key)
        return float(value)

    refresh = positive("refresh", 5.0)
    timeout = positive("timeout", 1.0)
    journal_retry = settings.get("journal_retry", JOURNAL_RETRY_S)
    if isinstance(journal_retry, bool) or not isinstance(journal_retry, (int, float)) or not 0 <= journal_retry <= 20:
        # Under the lock's 30 s stale timeout: nobody may take the environment over while a run waits.
        fail(f"journal_retry must be a number of seconds from 0 to 20, got {journal_retry!r}", "opsconsole",
             "journal_retry")
    for key in ("runbooks", "journal", "default_environment", "theme"):
        if key in settings and not isinstance(settings[key], str):
            fail(f"{key} must be a string", "opsconsole", key)
    if not isinstance(settings.get("bell", True), bool):
        fail("bell must be true or false", "opsconsole", "bell")
    keymap = raw.get("keymap", {})
    if not isinstance(keymap, Mapping):
        fail("[keymap] must be a table of binding id = \"key\"", "keymap")
    for binding_id, keys in keymap.items():
        if not isinstance(keys, str) or not keys.strip():
            fail(f"keymap {binding_id!r} must be a key string such as \"f5\" or \"ctrl+r,f5\"", "keymap", binding_id)

    environments = raw.get("environments")
    if not isinstance(environments, Mapping) or not environments:
        fail("no environments: add at least one [environments.NAME] table", "environments")
    for name, env in environments.items():
        _validate_environment(name, env, fail)

    try:
        thresholds.validate_layer(raw.get("thresholds", {}), ("thresholds",))
    except ThresholdError as exc:
        fail(str(exc), *exc.path)

    default = settings.get("default_environment", next(iter(environments)))
    if default not in environments:
        fail(f"default_environment {default!r} is not an environment", "opsconsole", "default_environment")

    return Config(
        path=path,
        refresh=refresh,
        timeout=timeout,
        runbooks=base_dir / settings.get("runbooks", "runbooks"),
        journal=settings.get("journal"),
        journal_retry=float(journal_retry),
        default_environment=default,
        theme=settings.get("theme"),
        bell=settings.get("bell", True),
        keymap=dict(keymap),
        raw=raw,
        lines=lines,
        base_dir=base_dir,
    )


def _too_deep(raw: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key path (for its line) of a value nested deeper than _MAX_DEPTH, walked without recursion."""
    stack: list[tuple[Any, tuple[str, ...], int]] = [(raw, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return path
        if isinstance(node, Mapping):
            stack.extend((v, path + (str(k),), depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, path, depth + 1) for v in node)
    return None


def nesting_line(text: str, limit: int) -> int | None:
    """The line where [ and { outside strings first nest deeper than `limit`, or None (TOML and YAML flow style: their
    parsers give up without a line, or, PyYAML, after seconds of CPU)."""
    depth = 0
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): TOML lines end at \n only
        quote, escaped = None, False
        for ch in line:
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\" and quote == '"':
                    escaped = True
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
                if depth > limit:
                    return number
            elif ch in "]}":
                depth -= 1
    return None


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # not a table: said elsewhere, with its line


def _check_keys(name: str, env: Mapping[str, Any], provider: str, fail: Any) -> None:
    """Every key of the environment's provider_options, services, queues and secrets is one something reads."""
    here = ("environments", name)
    known = schema.provider_option_keys(provider)
    others = schema.readers(("provider", schema.PROVIDER_OPTIONS))
    for key in _table(env.get("provider_options")):
        if key not in known:
            fail(schema.unknown_key(key, f"provider_options of a {provider} environment", known, others),
                 *here, "provider_options", key)
    service_readers = schema.readers(("provider", schema.SERVICE_BY_PROVIDER), ("probe", schema.SERVICE_BY_KIND))
    for member, spec in _table(env.get("services")).items():
        if not isinstance(spec, Mapping):
            continue  # said below, with its line
        # The kind, or what the url's scheme says; None when the url is still a ${VARIABLE}
        kind = spec.get("kind") or _INFER.get(str(spec.get("url", "")).split("://", 1)[0].lower())
        known = schema.service_keys(provider, kind if isinstance(kind, str) else None)
        for key in spec:
            if key not in known:
                fail(schema.unknown_key(key, f"service {member!r}", known, service_readers),
                     *here, "services", member, key)
    queue_readers = schema.readers(("queue", schema.QUEUE_BY_KIND))
    for member, spec in _table(env.get("queues")).items():
        if not isinstance(spec, Mapping):
            continue
        kind = spec.get("kind")
        known = schema.queue_keys(kind if isinstance(kind, str) else None)
        for key in spec:
            if key not in known:
                fail(schema.unknown_key(key, f"{kind or ''} queue {member!r}".strip(), known, queue_readers),
                     *here, "queues", member, key)
    secret_readers = schema.readers(("provider", schema.SECRET_BY_PROVIDER))
    known = schema.secret_keys(provider)
    for secret, spec in _table(env.get("secrets")).items():
        if not isinstance(spec, Mapping):
            fail(f"secret {secret!r} must be a table (its keys say where it lives and who restarts)",
                 *here, "secrets", secret)
        for key in spec:
            if key not in known:
                fail(schema.unknown_key(key, f"secret {secret!r} of a {provider} environment", known,
                                        secret_readers), *here, "secrets", secret, key)


def _validate_environment(name: str, env: Any, fail: Any) -> None:
    here = ("environments", name)
    if not _NAME.match(name):
        fail(f"environment name {name!r} may only hold letters, digits, '_' and '-'", *here)
    if not isinstance(env, Mapping):
        fail(f"environment {name!r} must be a table", *here)
    for key in sorted(set(env) - _ENV_KEYS):
        fail(f"unknown key {key!r} in environment {name!r} (known: {', '.join(sorted(_ENV_KEYS))})", *here, key)
    provider = env.get("provider", "local")
    if provider not in PROVIDERS:
        fail(f"unknown provider {provider!r} (known: {' | '.join(PROVIDERS)})", *here, "provider")
    protection = env.get("protection", "open")
    if protection not in PROTECTIONS:
        fail(f"unknown protection {protection!r} (known: {' | '.join(PROTECTIONS)})", *here, "protection")
    if not isinstance(env.get("read_only", False), bool):
        fail("read_only must be true or false", *here, "read_only")
    for table in ("provider_options", "secrets"):
        if not isinstance(env.get(table, {}), Mapping):
            fail(f"{table} must be a table", *here, table)
    try:
        thresholds.validate_layer(env.get("thresholds", {}), here + ("thresholds",))
    except ThresholdError as exc:
        fail(str(exc), *exc.path)
    for group_key, kinds in (("services", SERVICE_KINDS), ("queues", QUEUE_KINDS)):
        group = env.get(group_key, {})
        if not isinstance(group, Mapping):
            fail(f"{group_key} must be a table", *here, group_key)
        for member, spec in group.items():
            where = here + (group_key, member)
            if not _NAME.match(member):
                fail(f"name {member!r} may only hold letters, digits, '_' and '-'", *where)
            if not isinstance(spec, Mapping):
                fail(f"{group_key[:-1]} {member!r} must be a table", *where)
            kind = spec.get("kind")
            if kind is not None and kind not in kinds:
                other = "queues" if group_key == "services" else "services"
                hint = f"; {kind} belongs under {other}" if kind in (QUEUE_KINDS if group_key == "services" else SERVICE_KINDS) else ""
                fail(f"unknown kind {kind!r} (known: {' | '.join(kinds)}){hint}", *where, "kind")
            if group_key == "queues" and kind is None:
                meant = next((k for k in spec if schema.close_match(k, ("kind",))), None)
                hint = f"; is {meant!r} a typo of 'kind'?" if meant else ""
                fail(f"queue {member!r} needs a kind ({' | '.join(kinds)}){hint}", *where, *((meant,) if meant else ()))
            if "thresholds" in spec:
                if kind is None and spec.get("url") is None:
                    fail("thresholds need a probed service (kind and url)", *where, "thresholds")
                try:
                    # Kind may still be inferred from the url; check against it when we can.
                    inferred = kind or _INFER.get(str(spec.get("url", "")).split("://", 1)[0].lower())
                    thresholds.validate_layer(spec["thresholds"], where + ("thresholds",), kind=inferred)
                except ThresholdError as exc:
                    fail(str(exc), *exc.path)
    # After the kinds: a mistyped kind is the mistake to name, not the keys that kind would have read.
    _check_keys(name, env, provider, fail)
