"""Two ways the command line used to end in a traceback: a reader that leaves the pipe early, and a `.env` that is
not text when the journal's URL is read from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.security.conftest import CORPUS, assert_user_error


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path, write_config):
    write_config('[environments.local]\nprovider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    steps = "".join(f"## Step {i}\n```sh\necho {i}\n```\n" for i in range(3000))  # far more than a pipe holds
    (tmp_path / "runbooks" / "big.md").write_text("# Big\n" + steps)
    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "plan", "big"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.read(10)  # like `| head -c 10`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err  # 128 + SIGPIPE, what a shell tool reports
    assert err == ""


def test_a_journal_url_from_a_dotenv_that_is_not_text_is_one_line(tmp_path: Path, write_config, run_cli):
    config = write_config('[opsconsole]\njournal = "postgresql://ops:${JOURNAL_PASSWORD}@127.0.0.1:1/j"\n\n'
                          '[environments.local]\nprovider = "local"\n')
    (tmp_path / ".env").write_bytes((CORPUS / "dotenv" / "invalid_utf8.env").read_bytes())
    proc = run_cli("journal", stdin=subprocess.DEVNULL)
    assert_user_error(proc, where=Path(config).parent / ".env", contains="not UTF-8 text")
