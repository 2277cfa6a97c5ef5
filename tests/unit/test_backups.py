"""restore-backup's flags in the verb grammar, the provider options guard, and the dump-file helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsconsole import actions, backups
from opsconsole.actions import Action
from opsconsole.errors import UserError
from opsconsole.providers import Provider, plan_action


@pytest.mark.parametrize("line, expected", [
    ("restore-backup db --from latest --jobs 4", Action("restore-backup", service="db", source="latest", jobs=4)),
    ("restore-backup db --from x.dump --single-transaction --verify scratch --count-rows billing.invoices",
     Action("restore-backup", service="db", source="x.dump", single_transaction=True, verify="scratch",
            count_rows="billing.invoices")),
    ("restore-backup db --scratch-only --from latest --count-rows orders",
     Action("restore-backup", service="db", source="latest", scratch_only=True, count_rows="orders")),
    ("restore-backup db --no-safety-copy --from x.dump --from-other",
     Action("restore-backup", service="db", source="x.dump", from_other=True, no_safety_copy=True)),
])
def test_restore_flags_parse_and_round_trip(line, expected):
    action = actions.parse(line)
    assert action == expected
    assert actions.parse(action.text()) == action


def test_options_and_risk():
    assert actions.parse("restore-backup db --from latest").options == ()
    assert actions.parse("restore-backup db --from l --jobs 2 --verify none --count-rows t").options == (
        "--jobs", "--verify", "--count-rows")
    assert actions.parse("restore-backup db --from l --from-other --no-safety-copy").options == (
        "--from-other", "--no-safety-copy")  # a provider that cannot honour them refuses them
    assert actions.parse("restore-backup db --from latest").destructive
    assert not actions.parse("restore-backup db --from latest --scratch-only").destructive  # a drill


@pytest.mark.parametrize("line, message", [
    ("restore-backup db --from l --jobs 1", "argument --jobs: must be a whole number from 2 to 64"),
    ("restore-backup db --from l --jobs 65", "argument --jobs: must be a whole number from 2 to 64"),
    ("restore-backup db --from l --verify maybe", "argument --verify: invalid choice: 'maybe'"),
    ("restore-backup db --from l --count-rows 'orders; drop table x'", "not a table name"),
    ("restore-backup db --from l --jobs 2 --single-transaction",
     "restore-backup: --single-transaction and --jobs cannot combine"),
    ("restore-backup db --from l --scratch-only --verify scratch",
     "restore-backup: --scratch-only already restores into a scratch database (and only there)"),
    ("restore-backup db --from l --scratch-only --no-safety-copy",
     "restore-backup: --scratch-only never touches the database, so there is no safety copy to skip"),
])
def test_bad_restore_flags_carry_path_and_line(line, message):
    with pytest.raises(UserError) as err:
        actions.parse(line, "runbooks/r.md", 7)
    assert str(err.value).startswith("runbooks/r.md:7: ") and message in str(err.value)


class _Plain(Provider):
    name = "plain"

    def plan(self, action):
        return ("planned",)


def test_a_provider_refuses_flags_it_does_not_honour():
    provider = _Plain()
    assert plan_action(provider, actions.parse("restore-backup db --from latest")) == ("planned",)
    with pytest.raises(UserError) as err:
        plan_action(provider, actions.parse("restore-backup db --from latest --scratch-only --jobs 3"))
    assert str(err.value) == ("`restore-backup db --from latest --jobs 3 --scratch-only`: the plain provider cannot "
                              "do --jobs or --scratch-only; leave it out (it would otherwise be ignored)")
    provider.options = frozenset({"--jobs", "--scratch-only"})
    assert plan_action(provider, actions.parse("restore-backup db --from latest --scratch-only --jobs 3")) == (
        "planned",)


TOC = """\
;
; Archive created at 2026-11-21 14:41:08 UTC
;     dbname: shop
;     TOC Entries: 15
;     Dumped from database version: 15.20 (Debian 15.20-0+deb12u1)
;     Dumped by pg_dump version: 15.20 (Debian 15.20-0+deb12u1)
;
; Selected TOC Entries:
;
6; 2615 16395 SCHEMA - billing postgres
216; 1259 16392 TABLE billing invoices postgres
215; 1259 16385 TABLE public orders postgres
219; 1259 16401 TABLE public measurements postgres
220; 1259 16404 TABLE public measurements_2026 postgres
3300; 0 0 TABLE ATTACH public measurements_2026 postgres
218; 1259 16399 VIEW public v postgres
3355; 0 16392 TABLE DATA billing invoices postgres
3354; 0 16385 TABLE DATA public orders postgres
3210; 2606 16391 CONSTRAINT public orders orders_pkey postgres
"""


def test_parse_toc():
    contents = backups.parse_toc(TOC)
    assert (contents.entries, contents.tables) == (10, 4)
    assert contents.table_names == (("billing", "invoices"), ("public", "orders"), ("public", "measurements"),
                                    ("public", "measurements_2026"))
    assert (contents.database, contents.server_version) == ("shop", "15.20 (Debian 15.20-0+deb12u1)")
    assert contents.created_at == datetime(2026, 11, 21, 14, 41, 8, tzinfo=UTC)
    assert backups.parse_toc("garbage\n") == backups.Contents(0, 0, (), "", "", "", None)


def test_manifest_that_cannot_be_trusted(tmp_path: Path):
    dump = tmp_path / "db-20261121T000000Z.dump"
    dump.write_bytes(b"PGDMP")
    assert backups.read_manifest(dump) is None
    dump.with_suffix(".json").write_text("{not json")
    with pytest.raises(backups.BackupError) as err:
        backups.read_manifest(dump)
    assert str(err.value).startswith("its manifest db-20261121T000000Z.json cannot be read (")
    assert str(err.value).endswith("move it away to restore the dump without a checksum check")
    listed = backups.list_backups(tmp_path)
    assert [(b.path, b.complete) for b in listed] == [(dump, False)] and "cannot be read" in listed[0].problem


def test_scratch_names_and_connection_strings():
    when = datetime(2026, 11, 21, 13, 0, 5, tzinfo=UTC)
    assert backups.scratch_name("shop", when) == "opsconsole_scratch_shop_20261121t130005"
    long = backups.scratch_name("A-Very-Long-Database-Name-That-Goes-On-And-On", when)
    assert len(long.encode()) <= 63 and long.startswith("opsconsole_scratch_a_very_long_database_")
    assert backups.with_database("postgresql://u@h:5/shop?sslmode=require", "s") == "postgresql://u@h:5/s?sslmode=require"
    from psycopg.conninfo import conninfo_to_dict

    assert conninfo_to_dict(backups.with_database("host=h dbname=shop user=u", "s")) == {
        "host": "h", "dbname": "s", "user": "u"}
    assert backups.database_of("postgresql://u@h:5/shop") == "shop"
    assert backups.human_size(999) == "999 bytes" and backups.human_size(1_234_567) == "1.2 MB"


def test_two_backups_never_share_a_file(tmp_path: Path):
    when = datetime(2026, 11, 21, 13, 0, 5, tzinfo=UTC)
    first = backups.free_dump_path(tmp_path, "db", when)
    assert first.name == "db-20261121T130005Z.dump"
    assert backups.ReserveDump(first).perform(lambda line: None).ok
    assert (first.stat().st_mode & 0o777) == 0o600
    second = backups.free_dump_path(tmp_path, "db", when)  # the same second: the next free name
    assert second.name == "db-20261121T130006Z.dump"
    again = backups.ReserveDump(first).perform(lambda line: None)  # planned before the other one ran
    assert not again.ok and again.error == (f"refusing to overwrite the backup {first} (taken in the same second?): "
                                            f"back up again")
