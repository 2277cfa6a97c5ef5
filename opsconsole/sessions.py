"""Terminal sessions copied into docs: the commands after the prompts, and the output the doc expects.

Docs show commands the way a terminal does:

    $ kubectl rollout restart deployment/worker
    deployment.apps/worker restarted

in ```` ```console ```` / ```` ```shell-session ```` blocks, or in shell blocks whose lines carry a `$ ` prompt. bash
would run `$` as a command; the reader means the words after it. `read` splits such a block into the script to run
(prompt lines without their prompt, continuations joined) and the output the doc shows. Output lines become blank
lines of the script, so every command keeps its line in the file and problems point at the right line.
"""

from __future__ import annotations

import re

SESSION_LANGUAGES = ("console", "shell-session", "sh-session", "terminal")

# `$ cmd`, `user@host:~/app$ cmd`, `(venv) $ cmd`; in console blocks also the root prompt `# cmd`.
_PROMPT = re.compile(r"^\s*(?:\([\w.-]+\)\s*)?(?:[\w.-]+@[\w.-]+(?::[^\s$#]*)?|\[[^\]\n]+\])?\$(?: |\Z)")
_ROOT = re.compile(r"^\s*(?:[\w.-]+@[\w.-]+(?::[^\s$#]*)?|\[[^\]\n]+\])?# ")
_HOST_ROOT = re.compile(r"^\s*(?:[\w.-]+@[\w.-]+(?::[^\s$#]*)?|\[[^\]\n]+\])# ")  # root@db:~# , [root@db ~]#
_CONTINUED = re.compile(r"^\s*> ")  # bash's PS2 after an unfinished line
_HEREDOC = re.compile(r"(?<!<)<<(?!<)-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")  # not a <<< here-string


def prompted(content: str) -> bool:
    """Whether a shell block is written as a session: its first line that is not blank carries a `$ ` prompt."""
    first = next((line for line in content.split("\n") if line.strip()), "")
    return bool(_PROMPT.match(first))


def read(content: str, *, root_prompts: bool) -> tuple[str, str]:
    """(the script: commands without their prompts, output lines blank; the output the doc shows). With
    `root_prompts`, a `# ` line is a command typed as root (console blocks); in a shell block it stays a comment."""
    script: list[str] = []
    output: list[str] = []
    pending = False  # the command before goes on: a trailing backslash, an open quote, a here-document
    heredoc: str | None = None
    current: list[str] = []  # the lines of the command being read
    lines = content.split("\n")
    # `# ` is root's prompt only in a session of root's: where `$ ` prompts appear, a bare `# …` is a comment.
    root = root_prompts and not any(_PROMPT.match(line) for line in lines)
    for line in lines:
        if heredoc is not None:
            body = line[_CONTINUED.match(line).end():] if _CONTINUED.match(line) else line  # copied with PS2
            script.append(body)
            if body.strip() == heredoc:
                heredoc = None
            continue
        prompt = _PROMPT.match(line) or (_ROOT.match(line) if root else _HOST_ROOT.match(line))
        if prompt and not pending:
            command = line[prompt.end():]
            current = []
        elif pending:
            command = line[_CONTINUED.match(line).end():] if _CONTINUED.match(line) else line
        elif not root and line.lstrip().startswith("#"):
            command = line  # a comment between commands, as written
        else:
            script.append("")
            output.append(line)
            continue
        script.append(command)
        current.append(command)
        pending = _unfinished("\n".join(current))
        found = _HEREDOC.search(command)
        if found:
            heredoc = found.group(2)
    return "\n".join(script), "\n".join(output).strip("\n")


_OPENERS = re.compile(r"(?:^|[;&|(\s])(for|while|until|if|case|select)\s")
_CLOSERS = re.compile(r"(?:^|[;&|\s])(done|fi|esac)(?=$|[;&|)\s])")


def _unfinished(command: str) -> bool:
    """Whether bash would ask for more (its `> ` prompt): a trailing backslash, pipe or `&&`, an open quote, a
    loop or `if` not closed yet. Lines after a finished command are its output, even when they start with `> `."""
    text = command.rstrip()
    if text.endswith(("\\", "|", "&&", "||", "{", "(")):
        return True
    if _open_quote(command):
        return True
    code = "\n".join(line.split(" #", 1)[0] for line in command.split("\n"))
    code = re.sub(r"'[^']*'|\"(?:\\.|[^\"\\])*\"", "''", code)  # words in quotes are not keywords
    return len(_OPENERS.findall(code)) > len(_CLOSERS.findall(code))


def _open_quote(command: str) -> bool:
    """Whether a line leaves a quote open, so the next line goes on (bash's rules for ' and ", backslashes)."""
    quote = ""
    escaped = False
    for char in command:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and not quote:
            break  # a comment: nothing after it opens anything
    return bool(quote)
