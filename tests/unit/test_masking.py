from __future__ import annotations

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
