"""Queue names with characters that mean something elsewhere: glob patterns (`*`, `?`, `[...]`), `:` (BullMQ's key
separator), `{...}` hash tags, spaces, unicode, ANSI escapes and Rich markup; RabbitMQ names with `/`, `%`, `#` and
`?` (URL syntax on the management API's path). Each queue's counts are its own (a decoy queue whose keys a glob
would also match is never counted), `check` prints every name as visible text, one row per queue, and the JSON stays
valid. BullMQ queues are built by BullMQ itself where it accepts the name (it refuses `:`; those are written the way
BullMQ lays out its keys)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.security.conftest import assert_clean
from tests.servers import missing

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
DB = 7  # a Redis db of this module's own on the session's throwaway server

# BullMQ queue name -> the jobs BullMQ itself puts in it. The decoys match the globs the hostile names spell.
BULLMQ = {
    "a*": {"waiting": 2},
    "a?": {"waiting": 1, "delayed": 1},
    "[ab]c": {"waiting": 3},
    "abc": {"waiting": 7, "delayed": 3, "prioritized": 2},  # decoy for a*, a? (no), [ab]c... and every glob here
    "ac": {"waiting": 5},                                     # decoy for a?, [ab]c
    "with space": {"waiting": 4},
    "ünïcødé 🚀": {"waiting": 5, "prioritized": 1},
    "{tag}": {"waiting": 2, "delayed": 1},
    "\x1b[31mred\x1b[0m": {"waiting": 1},
    "[bold red]x[/]": {"waiting": 2},
    "\\": {"waiting": 1},
}
# Names BullMQ refuses (`:`): keys written in its layout, `bull:<name>:wait` a list of job ids.
RAW_BULLMQ = {"a:b": 3, "a:*": 1, "x:\n:y": 2}
# A name that matches other queues' keys as a glob but is no queue: it must read as empty, with a hint.
ABSENT = ["*", "a[bc]", "\x1b]0;owned\x07*"]
# redis-list key -> its length; "list-decoy" matches list* and list?ecoy.
LISTS = {"list*": 2, "list?ecoy": 1, "list-decoy": 9, "list with space": 3, "{list}tag": 4, "liste\x1b[2J": 5}


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value` (every control character as \\uXXXX)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def node_bullmq(url: str, queues: dict[str, dict]) -> dict:
    if shutil.which("node") is None:
        missing("node is not installed")
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        missing("tests/node/node_modules is missing: run `make test` (it installs them)")
    spec = {"lib": "bullmq", "url": url, "queues": [{"name": name, **jobs} for name, jobs in queues.items()]}
    out = subprocess.run(["node", str(NODE_DIR / "queues.mjs"), json.dumps(spec)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def redis_db(redis_server):
    """The session's throwaway Redis, db 7, emptied once and filled for the whole module."""
    redis_server.start()
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    redis_server.cli("-n", str(DB), "FLUSHDB")
    theirs = node_bullmq(url, BULLMQ)
    for name, ids in RAW_BULLMQ.items():
        for i in range(ids):
            redis_server.cli("-n", str(DB), "RPUSH", f"bull:{name}:wait", str(i + 1))
        redis_server.cli("-n", str(DB), "HSET", f"bull:{name}:meta", "opts.maxLenEvents", "10000")
    for key, length in LISTS.items():
        redis_server.cli("-n", str(DB), "RPUSH", key, *[f"job{i}" for i in range(length)])
    return url, theirs


def bullmq_config(url: str) -> tuple[str, dict[str, str]]:
    members: dict[str, str] = {}
    lines = ['[environments.local]\nprovider = "local"\n']
    for i, name in enumerate([*BULLMQ, *RAW_BULLMQ, *ABSENT]):
        members[f"b{i}"] = name
        lines.append(f'[environments.local.queues.b{i}]\nkind = "bullmq"\nurl = "{url}"\nqueue = {toml_string(name)}\n')
    for i, key in enumerate(LISTS):
        members[f"l{i}"] = key
        lines.append(f'[environments.local.queues.l{i}]\nkind = "redis-list"\nurl = "{url}"\nkey = {toml_string(key)}\n')
    return "\n".join(lines), members


def test_each_queue_is_counted_as_its_own_whatever_its_name_spells(redis_db, write_config, run_cli):
    url, theirs = redis_db
    text, members = bullmq_config(url)
    cfg = write_config(text)
    proc = run_cli("check", "--json", "--config", str(cfg), stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr[-3000:]
    assert_clean(proc.stdout)
    report = {q["name"]: q for q in json.loads(proc.stdout)["queues"]}
    assert set(report) == set(members)
    for member, name in members.items():
        q = report[member]
        assert q["error"] is None, (name, q["error"])
        if name in BULLMQ:
            expected = theirs[name]
            assert q["counts"] == expected["counts"], name
            assert q["depth"] == expected["count"], name
            assert q["reasons"] == [], (name, q["reasons"])
        elif name in RAW_BULLMQ:
            assert q["counts"]["waiting"] == q["depth"] == RAW_BULLMQ[name], name
        elif name in ABSENT:  # a glob decoy is no queue: unknown, never depth 0
            assert q["depth"] is None and q["status"] == "unknown", name
            assert q["reasons"] and q["reasons"][0].startswith("no bullmq queue bull:"), (name, q["reasons"])
        else:
            assert q["depth"] == q["counts"]["waiting"] == LISTS[name], name
    assert proc.returncode == 3  # every depth under the default warn level; the decoys are unknown


def test_the_table_shows_every_name_as_visible_text_one_row_each(redis_db, write_config, run_cli):
    url, _ = redis_db
    text, members = bullmq_config(url)
    cfg = write_config(text)
    proc = run_cli("check", "--config", str(cfg), stdin=subprocess.DEVNULL)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-3000:]  # the decoys are unknown
    assert_clean(proc.stdout)
    rows = proc.stdout.rstrip("\n").split("\n")[2:]
    assert len(rows) == len(members), proc.stdout
    assert [row.split()[1] for row in rows] == list(members)
    for shown in ("no bullmq queue bull:* in this Redis", "no bullmq queue bull:a[bc] in this Redis",
                  "no bullmq queue bull:\\x1b]0;owned\\x07* in this Redis"):
        assert shown in proc.stdout, (shown, proc.stdout)


def test_a_missing_list_with_a_hostile_key_is_named_as_text(redis_db, write_config, run_cli, tmp_path):
    url, _ = redis_db
    key = "gone\n\x1b[2J[bold red]x[/]*"
    cfg = write_config(f'[environments.local]\nprovider = "local"\n[environments.local.queues.q]\nkind = "redis-list"\n'
                       f'url = "{url}"\nkey = {toml_string(key)}\n'
                       f'[environments.local.queues.b]\nkind = "bullmq"\nurl = "{url}"\nqueue = {toml_string(key)}\n')
    proc = run_cli("check", "--config", str(cfg), stdin=subprocess.DEVNULL)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-3000:]  # missing: unknown
    assert_clean(proc.stdout)
    rows = proc.stdout.rstrip("\n").split("\n")[2:]
    assert len(rows) == 2, proc.stdout  # the line break in the name forges no row
    assert "no list queue 'gone\\n\\x1b[2J[bold red]x[/]*' in this Redis" in rows[0]
    assert "no bullmq queue bull:gone\\x0a\\x1b[2J[bold red]x[/]* in this Redis" in rows[1]
    out = tmp_path / "queues.svg"
    snap = run_cli("snapshot", "--config", str(cfg), "--output", str(out), "--size", "160x40",
                   stdin=subprocess.DEVNULL, timeout=60)
    assert snap.returncode == 0, snap.stderr[-3000:]
    svg = out.read_text()
    assert_clean(svg, "the SVG")
    assert "[bold red]x[/]" in svg.replace("&#160;", " ")


# --- RabbitMQ (management API) --------------------------------------------------------------------

RABBIT_NAMES = ["a/b", "with space", "100%", "%2F", "q#frag", "q?x=1", "..", "ünï 🚀", "[bold]x[/]", "a*"]
EXACT = [".", ".."]  # path segments of their own: "this" and "the parent", unless quoted


def management(path: str) -> dict:
    import base64

    request = urllib.request.Request("http://127.0.0.1:15672" + path)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_rabbitmq_names_with_url_syntax_read_their_own_queue(rabbitmq, write_config, run_cli):
    import pika

    tag = uuid.uuid4().hex[:6]
    names = {name: i + 1 for i, name in enumerate([*(f"{n}-{tag}" for n in RABBIT_NAMES), *EXACT])}
    decoys = {f"a-{tag}": 11, f"a%2Fb-{tag}": 12}  # what `a/b` would read with its slash unquoted or quoted twice
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    channel = connection.channel()
    try:
        for name, count in {**names, **decoys}.items():
            channel.queue_declare(queue=name, auto_delete=False)
            channel.queue_purge(name)  # `.` and `..` are not this run's own names
            for i in range(count):
                channel.basic_publish(exchange="", routing_key=name, body=f"m{i}".encode())
        deadline = time.monotonic() + 30  # the management API refreshes its figures every few seconds
        while True:  # the vhost's list: `.` and `..` cannot be asked for one by one (the path resolves them)
            ready = {q["name"]: q.get("messages_ready") for q in management("/api/queues/%2F")}
            if all(ready.get(name) == count for name, count in names.items()):
                break
            assert time.monotonic() < deadline, {n: ready.get(n) for n in names}
            time.sleep(0.5)
        lines = ['[environments.local]\nprovider = "local"\n']
        for i, name in enumerate(names):
            lines.append(f'[environments.local.queues.r{i}]\nkind = "rabbitmq"\nurl = "{rabbitmq}"\n'
                         f'queue = {toml_string(name)}\n')
        lines.append(f'[environments.local.queues.gone]\nkind = "rabbitmq"\nurl = "{rabbitmq}"\n'
                     f'queue = {toml_string("a/" + chr(27) + "[2J-" + tag)}\n')
        cfg = write_config("\n".join(lines))
        as_json = run_cli("check", "--json", "--config", str(cfg), stdin=subprocess.DEVNULL)
        text = run_cli("check", "--config", str(cfg), stdin=subprocess.DEVNULL)
    finally:
        for name in {**names, **decoys}:
            channel.queue_delete(name)
        connection.close()
    for proc in (as_json, text):
        assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr[-3000:]
        assert_clean(proc.stdout)
    report = {q["name"]: q for q in json.loads(as_json.stdout)["queues"]}
    for i, (name, count) in enumerate(names.items()):
        q = report[f"r{i}"]
        assert q["error"] is None and q["depth"] == count and q["counts"]["ready"] == count, (name, q)
    gone = report["gone"]
    assert gone["depth"] is None and gone["status"] == "unknown"
    assert gone["reasons"][0].startswith("no queue 'a/\\x1b[2J-"), gone["reasons"]
    assert len(text.stdout.rstrip("\n").split("\n")) == 2 + len(names) + 1
    assert "guest:guest" not in as_json.stdout + text.stdout
