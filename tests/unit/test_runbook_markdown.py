"""Any plain Markdown file with shell blocks is a runbook: real-world style READMEs and runbooks
(no front matter, console output, nested lists, HTML, tables) parse into the steps a reader sees."""

from __future__ import annotations

from pathlib import Path

from opsconsole import runbook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "markdown"


def outline(name: str) -> list[tuple[str, int, list[tuple[str, int, str]]]]:
    book = runbook.load(FIXTURES / name)
    return [(s.title, s.line, [(b.role, b.line, b.source.splitlines()[0]) for b in s.blocks]) for s in book.steps]


def test_alert_runbook_with_sections():
    book = runbook.load(FIXTURES / "postgres-replica-lag.md")
    assert (book.title, book.params, book.environments) == ("PostgreSQL replica lag", (), None)
    assert book.summary.startswith("Alert: PostgresReplicationLagHigh Severity: S2")
    assert outline("postgres-replica-lag.md") == [
        ("Confirm the lag on the primary", 23, [
            ("run", 32, 'psql -X -c "SELECT application_name, state, replay_lag FROM pg_stat_replication"')]),
        ("Look for a long-running query on the replica", 45, [
            ("run", 49, 'psql -X -c "SELECT pid, now() - xact_start AS age, left(query, 60) FROM pg_stat_activity '
                        "WHERE state <> 'idle' ORDER BY age DESC LIMIT 5\""),
            ("run", 53, 'psql -X -c "SELECT pg_cancel_backend(PID)"'),
        ]),
        ("Check the lag is going down", 67, [
            ("verify", 69, 'test "$(psql -XAtc "SELECT coalesce(extract(epoch FROM max(replay_lag)), 0)::int '
                           'FROM pg_stat_replication")" -lt 60')]),
    ]
    # The quoted `pg_ctl promote` is a warning, not a step; it stays in the intro with the table.
    assert "pg_ctl promote" in book.intro and "| Lag per replica |" in book.intro
    assert all("pg_ctl" not in b.source for s in book.steps for b in s.blocks)
    confirm, look, check = book.steps
    # SQL and console output are guidance shown beside the step, as written.
    assert "```sql\nSELECT application_name" in confirm.prose and "```console\n application_name |" in confirm.prose
    # The nested list keeps its structure; the HTML <details> stays Markdown.
    assert "   - Cancel, do not terminate" in look.prose and "<summary>Why does a query" in look.prose
    assert "## Symptoms" in book.intro
    assert check.prose == ("## Escalation\n\n"
                           "If the lag keeps growing for 30 minutes, page the DBRE secondary and open an incident.")
    assert check.blocks[0].timeout_s == 600


def test_project_readme():
    book = runbook.load(FIXTURES / "acme-cache-readme.md")
    assert book.title == "acme-cache"
    # The badge row is not the summary; the first sentence is.
    assert book.summary == "A write-through cache in front of the orders database, backed by Redis."
    assert outline("acme-cache-readme.md") == [
        ("Installation", 11, [("run", 15, "npm ci"), ("run", 21, "cp config/example.yml config/local.yml")]),
        ("Running", 33, [("run", 35, "npm run start")]),
        # A `###` holding a block is a step of its own, with its `##` as context.
        ("Warming the cache", 45, [("run", 49, "npm run warm -- --top 1000")]),
    ]
    install, running, warming = book.steps
    assert install.blocks[0].source == "npm ci\n"  # de-indented out of the list item
    assert "```yaml\n   redis:" in install.prose  # a yaml block inside a list item is guidance
    assert "> node dist/server.js" in running.prose and warming.context == ("Running",)
    assert warming.prose.startswith("After a flush, warm the hot keys")
    assert warming.prose.endswith("## License\n\nMIT © Acme")


def test_a_document_of_h3_sections_makes_each_section_a_step():
    book = runbook.load(FIXTURES / "disk-full.md")
    assert book.title == "Disk almost full on a database host"
    assert book.intro.startswith("The `NodeFilesystemAlmostFull` alert fired")
    # Each `###` holding blocks is one step: the slot query, the drop and its check are confirmed together.
    assert outline("disk-full.md") == [
        ("Find what is using the space", 6, [("run", 8, "df -h /var/lib/postgresql")]),
        ("WAL piling up? Look for an inactive replication slot", 21, [
            ("run", 23, 'psql -XAt -c "SELECT slot_name, active, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '
                        'restart_lsn)) FROM pg_replication_slots"'),
            ("run", 33, "psql -X -c \"SELECT pg_drop_replication_slot('SLOT_NAME')\""),
            ("verify", 37, 'test "$(df --output=pcent /var/lib/postgresql | tail -1 | tr -dc 0-9)" -lt 90'),
        ]),
        ("Old logs", 41, [("run", 45, "find /var/log/postgresql -name '*.log' -mtime +7 -exec gzip {} +")]),
    ]
    find, slot, logs = book.steps
    # Output printed after a command belongs to that command's step.
    assert "Typical output" in find.prose and "pg_wal" in find.prose
    assert "  * ask in #dbre first;" in slot.prose
    assert "<!-- logs rotate daily" in logs.prose and logs.prose.endswith("Page the DBRE secondary.")


def test_shipped_runbooks_are_valid():
    shipped = Path(__file__).resolve().parents[2] / "opsconsole" / "shipped_runbooks"
    names = sorted(p.stem for p in runbook.runbook_files(shipped))
    assert {"scale-workers", "deploy", "migrate", "restore-backup", "rotate-secret", "local-smoke"} <= set(names)
    for path in runbook.runbook_files(shipped):
        book = runbook.load(path)
        assert book.title and book.summary and book.steps, path
        assert all(step.prose or step.title for step in book.steps)


def test_shipped_scale_workers_is_the_spec_example():
    shipped = Path(__file__).resolve().parents[2] / "opsconsole" / "shipped_runbooks" / "scale-workers.md"
    book = runbook.load(shipped)
    values = runbook.bind_params(book, {})
    check, scale = book.steps
    assert runbook.render(check.blocks[0], values, {}).strip() == "expect emails.depth > 1000"
    run, verify, rollback = scale.blocks
    assert runbook.render(run, values, {}).strip() == "scale worker --replicas 4"
    assert (verify.role, verify.timeout_s) == ("verify", 300)
    assert runbook.render(rollback, values, {"replicas": 2}).strip() == "scale worker --replicas 2"
