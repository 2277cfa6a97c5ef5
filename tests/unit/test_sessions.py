"""Terminal sessions copied into docs: prompt lines are the commands, the rest is the output the doc expects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opsconsole import runbook, sessions

PLAIN = Path(__file__).resolve().parents[1] / "fixtures" / "plain"


def test_a_console_doc_plans_its_prompt_lines_and_keeps_the_output_it_expects():
    book = runbook.load(PLAIN / "restart-worker-session.md")
    restart, pods = book.steps
    (block,) = restart.blocks
    assert [line for line in block.source.splitlines() if line.strip()] == [
        "kubectl rollout restart deployment/worker", "kubectl rollout status deployment/worker \\",
        "  --timeout=120s"]
    assert block.expected.splitlines()[0] == "deployment.apps/worker restarted"
    assert block.expected.splitlines()[-1] == 'deployment "worker" successfully rolled out'
    # A ```shell block written with `$ ` prompts is a session too.
    assert pods.blocks[0].source.strip() == "kubectl get pods -l app=worker"
    assert pods.blocks[0].expected.startswith("NAME ")
    # A console block with no prompt is output shown as guidance, not a step.
    assert "```console\nemails  waiting=0" in pods.prose


@pytest.mark.parametrize(("lang", "content", "script", "expected"), [
    ("console", "$ echo one\none\n# a comment\nroot\n", ["echo one", "# a comment"], "one\nroot"),
    ("console", "# id -un\nroot\n# hostname\ndb-1\n", ["id -un", "hostname"], "root\ndb-1"),  # root's session
    ("bash", "$ echo one\n# a comment\none\n", ["echo one", "# a comment"], "one"),
    ("console", "user@web-1:~/app$ make deploy\nok\n", ["make deploy"], "ok"),
    ("console", "(venv) $ pip install -e .\nSuccessfully installed\n", ["pip install -e ."], "Successfully installed"),
    ("console", "$ cat <<EOF > motd\n$ not a prompt inside a here-document\nEOF\n$ echo done\ndone\n",
     ["cat <<EOF > motd", "$ not a prompt inside a here-document", "EOF", "echo done"], "done"),
    ("console", "$ echo 'two\nlines'\ntwo\nlines\n", ["echo 'two", "lines'"], "two\nlines"),
    ("console", "$ for i in 1 2; do\n>   echo $i\n> done\n1\n2\n", ["for i in 1 2; do", "  echo $i", "done"], "1\n2"),
])
def test_sessions_read(lang, content, script, expected):
    text, output = sessions.read(content, root_prompts=lang not in runbook.SHELL_LANGUAGES)
    assert [line for line in text.split("\n") if line.strip()] == script
    assert output == expected
    assert text.count("\n") == content.count("\n")  # every command keeps its line


def test_the_commands_run_not_the_prompt(tmp_path):
    doc = tmp_path / "session.md"
    doc.write_text("## Say it\n```shell\n$ echo \"hello from $(basename $PWD)\"\nhello from x\n$ echo second\n"
                   "second\n```\n")
    (block,) = runbook.load(doc).steps[0].blocks
    done = subprocess.run(["bash", "-e", "-c", block.source], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == f"hello from {tmp_path.name}\nsecond\n"


def test_a_problem_in_a_session_points_at_its_line_in_the_file(tmp_path):
    doc = tmp_path / "broken.md"
    doc.write_text("## Broken\n```console\n$ echo fine\nfine\n$ if then\n```\n")
    _, problems = runbook.inspect(doc)
    assert [p.line for p in problems] == [5]


def test_output_that_starts_like_a_continuation_prompt_is_output():
    text, output = sessions.read("$ npm run start\n> acme-cache@2.3.1 start\n> node dist/server.js\nlistening\n",
                                 root_prompts=True)
    assert text.strip() == "npm run start"
    assert output == "> acme-cache@2.3.1 start\n> node dist/server.js\nlistening"


@pytest.mark.parametrize(("content", "script", "expected"), [
    # A here-document copied with bash's `> ` prompts ends at its `> EOF`; the next command still runs.
    ("$ cat <<EOF > f\n> hello\n> EOF\n$ kubectl apply -f f\ncreated\n",
     ["cat <<EOF > f", "hello", "EOF", "kubectl apply -f f"], "created"),
    ("$ base64 -d <<<abc\nout1\n$ echo x\nx\n", ["base64 -d <<<abc", "echo x"], "out1\nx"),  # a here-string
    ('$ echo "waiting for pods"\nwaiting for pods\n$ kubectl get pods\nNAME\n',  # a keyword in quotes
     ['echo "waiting for pods"', "kubectl get pods"], "waiting for pods\nNAME"),
    ("[root@db ~]# systemctl restart postgresql\n[root@db ~]# systemctl status postgresql\nactive\n",
     ["systemctl restart postgresql", "systemctl status postgresql"], "active"),
    # Beside `$ ` prompts a `# …` line is a comment, not root's prompt.
    ("# Restart the worker\n$ kubectl rollout restart deploy/worker\nrestarted\n",
     ["# Restart the worker", "kubectl rollout restart deploy/worker"], "restarted"),
])
def test_sessions_copied_the_way_people_copy_them(content, script, expected):
    text, output = sessions.read(content, root_prompts=True)
    assert [line for line in text.split("\n") if line.strip()] == script
    assert output == expected
