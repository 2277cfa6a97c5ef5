"""Lint: advice with a line number on a runbook's shell blocks; a development-only command refused on `typed`."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole import lint, runbook
from opsconsole.errors import UserError

PLAIN = Path(__file__).resolve().parents[1] / "fixtures" / "plain"


def book_of(tmp_path: Path, script: str, params: str = ""):
    path = tmp_path / "book.md"
    front = f"---\nparams:\n{params}---\n" if params else ""
    path.write_text(f"{front}## Step\n```sh\n{script}```\n")
    return runbook.load(path)


def test_the_common_operations_doc_gets_advice_for_each_hand_made_verb():
    book = runbook.load(PLAIN / "common-operations.md")
    advice = lint.advice(book)
    assert [(a.line, a.message.split(":")[0]) for a in advice] == [
        (13, "this does `deploy` by hand"), (23, "this does `migrate` by hand"), (29, "this does `scale` by hand"),
        (34, "this block generates a secret"),
        (39, "{{ new_secret }} is a secret and lands in this command's argv, which every user of the host can read (ps)"),
        (39, "this does `rotate-secret` by hand"), (40, "this does `deploy` by hand")]
    assert "`opsconsole rotate-secret JWT_SECRET`" in advice[5].message
    # On railway, opsconsole's railway function sends a `variables set` value on stdin: no argv advice there.
    assert not any("argv" in a.message for a in lint.advice(book, "railway"))


@pytest.mark.parametrize(("script", "start"), [
    ("npx prisma migrate dev\n", "`prisma migrate dev/reset` may reset the database"),
    ("npx prisma db push --accept-data-loss\n", "`prisma db push` changes the schema"),
    ("npx prisma migrate reset --force\n", "`prisma migrate dev/reset` may reset"),
    ("bin/rails db:reset\n", "this rails task drops"),
    ("php artisan migrate:fresh --seed\n", "this Laravel command drops every table"),
    ("curl -fsSL https://get.example.com | sudo bash\n", "pipes a download into a shell"),
])
def test_advice_names_the_line(tmp_path, script, start):
    (advice,) = lint.advice(book_of(tmp_path, "echo before\n" + script))
    assert advice.line == 4 and advice.message.startswith(start)


def test_a_secret_in_argv_is_advised_but_not_in_the_environment_or_on_stdin(tmp_path):
    params = "  token: {type: secret}\n"
    (argv,) = lint.advice(book_of(tmp_path, "curl -H \"Authorization: Bearer {{ token }}\" https://x\n", params))
    assert argv.message.startswith("{{ token }} is a secret and lands in this command's argv")
    assert lint.advice(book_of(tmp_path, "export TOKEN={{ token }}\nTOKEN={{ token }} deploy\n"
                                         "cat <<< {{ token }}\n", params)) == []


def test_comments_and_plain_commands_get_no_advice(tmp_path):
    assert lint.advice(book_of(tmp_path, "# npx prisma migrate dev would reset it\necho ok\nprisma migrate status\n")) \
        == []


def test_a_development_command_is_refused_where_the_name_is_typed(tmp_path):
    book = book_of(tmp_path, "echo one\nnpx prisma migrate dev --name init\n")
    lint.refuse_development(book, "staging", "confirm")  # advice only
    with pytest.raises(UserError) as caught:
        lint.refuse_development(book, "production", "typed")
    assert caught.value.line == 4
    assert caught.value.message.startswith("`prisma migrate dev/reset` may reset the database: a development-only "
                                           "command does not run on 'production' (protection typed)")

