from __future__ import annotations

import pytest

from opsconsole import masking


def test_url_passwords_are_masked_in_any_text():
    text = "failed: postgresql://app:Sup3r$ecret@db:5432/app and rediss://:tok3n@cache:6380/0"
    out = masking.mask(text)
    assert "Sup3r$ecret" not in out and "tok3n" not in out
    assert "postgresql://app:***@db:5432/app" in out and "rediss://:***@cache:6380/0" in out


def test_keyword_passwords_are_masked():
    assert masking.mask("host=db password=hunter2 dbname=x") == "host=db password=*** dbname=x"
    assert masking.mask("https://h/q?user=a&password=hunter2&x=1") == "https://h/q?user=a&password=***&x=1"


def test_registered_secrets_are_masked_everywhere():
    masking.register("x9-registered-token")
    assert masking.mask("token x9-registered-token in 'x9-registered-token'") == "token *** in '***'"


def test_register_url_masks_the_bare_password_later():
    masking.register_url("redis://default:pw-from-url-42@h:6379/0")
    assert masking.mask("AUTH pw-from-url-42 failed") == "AUTH *** failed"


def test_redact_url_keeps_the_rest():
    assert masking.redact_url("postgresql://u:p%40ss@h:5/d?sslmode=require") == "postgresql://u:***@h:5/d?sslmode=require"
    assert masking.redact_url("http://h/health") == "http://h/health"


# --- one index for every secret; masking a stream, not lines --------------------------------------------------

@pytest.fixture(autouse=True)
def own_secrets(monkeypatch):
    """Each test registers into a set of its own: thousands of test secrets must not slow every later mask()."""
    monkeypatch.setattr(masking, "_secrets", set(masking._secrets))
    monkeypatch.setattr(masking, "_index", None)  # rebuilt from this set
    yield
    monkeypatch.undo()
    masking._index = None

PEM = ("-----BEGIN PRIVATE KEY-----\n" + "\n".join(f"MIIEv{i:02d}QIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC{i:02d}"
                                                     for i in range(12)) + "\n-----END PRIVATE KEY-----")


def test_a_secret_containing_another_is_hidden_whole_and_neighbours_both_go():
    masking.register("k3y-shorter-0001")
    masking.register("k3y-shorter-0001-and-longer")
    masking.register("zz-next-to-it-0002")
    text = "a k3y-shorter-0001-and-longer b k3y-shorter-0001 czz-next-to-it-0002k3y-shorter-0001d"
    assert masking.mask(text) == "a *** b *** c******d"


def test_many_secrets_are_all_found(tmp_path):
    secrets = [f"mx-{i:05d}-{i * 7919 % 100000:05d}-tail" for i in range(3000)]
    for secret in secrets:
        masking.register(secret)
    text = " | ".join(secrets[::7])
    assert not any(s in masking.mask(text) for s in secrets)
    assert masking.mask(text).count("***") == len(secrets[::7])


def stream(chunks: list[str], max_line: int = 65536) -> list[str]:
    out: list[str] = []
    masker = masking.StreamMasker(out.append, max_line=max_line)
    for chunk in chunks:
        masker.feed_bytes(chunk.encode())
    masker.close()
    return out


def pieces(secret: str, size: int = 12) -> list[str]:
    """Every stretch of `size` characters of the secret that is not a PEM armour line: none may show."""
    body = "".join(line for line in secret.splitlines() if not line.startswith("-----"))
    return [body[i:i + size] for i in range(0, len(body) - size, size)]


def test_a_multi_line_secret_echoed_is_hidden_across_its_lines_in_any_chunking():
    masking.register(PEM)
    text = f"writing key\nkey: {PEM}\ndone\n"
    for size in (1, 3, 7, 64, 4096):
        out = stream([text[i:i + size] for i in range(0, len(text), size)])
        assert out == ["writing key", "key: ***", "done"], size


def test_lines_that_only_look_like_a_secrets_start_still_arrive():
    masking.register(PEM)
    out = stream(["-----BEGIN PRIVATE KEY-----\nnot the key\n", "after\n"])
    assert out == ["-----BEGIN PRIVATE KEY-----", "not the key", "after"]


def test_a_line_is_not_held_when_no_multi_line_secret_could_start_in_it():
    masking.register(PEM)
    out: list[str] = []
    masker = masking.StreamMasker(out.append)
    masker.feed_bytes(b"progress 10%\n")
    assert out == ["progress 10%"]  # shown at once, not at the end of the stream


def test_a_secret_across_the_cut_of_an_over_long_line_is_hidden_whole():
    secret = "LONG" + "".join(f"{i:06x}" for i in range(5000))  # 30 KB, one line
    masking.register(secret)
    text = "x" * 50_000 + secret + "y" * 50_000 + "\n"
    out = stream([text[i:i + 4096] for i in range(0, len(text), 4096)], max_line=65536)
    joined = "".join(out)
    assert all(piece not in joined for piece in pieces(secret)) and joined.count("***") == 1
    assert all(len(line) <= 65536 + len(secret) for line in out)
    assert joined.replace("***", "") == "x" * 50_000 + "y" * 50_000


def test_a_pathological_set_of_nested_secrets_falls_back_to_scanning_each():
    for n in range(20, 1400, 1):  # each one the previous one and one more character: a very deep prefix tree
        masking.register("q" * n)
    assert masking._current_index()[0] is None  # no pattern could be built
    assert masking.mask("a " + "q" * 1500 + " b") == "a ****** b"  # 1399 q's, then the 101 left
