"""Human placeholders in plain docs (`<new_secret>`, `YOUR_API_KEY_HERE`) become params; redirections, markup and
comments stay what they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole import masking, placeholders, runbook
from opsconsole.errors import UserError

PLAIN = Path(__file__).resolve().parents[1] / "fixtures" / "plain"


@pytest.mark.parametrize(("source", "names"), [
    ("railway variables set JWT_SECRET=<new_secret>\n", ["new_secret"]),
    ('curl -H "Authorization: Bearer <token>" https://<host>/health\n', ["token", "host"]),
    ("kubectl rollout restart deployment/<SERVICE-NAME>\n", ["service_name"]),
    ("export STRIPE_KEY=YOUR_STRIPE_KEY_HERE\naws configure set region YOUR_REGION\n", ["stripe_key", "region"]),
    ("echo '<name>'\n", ["name"]),  # inside single quotes too: the value is quoted where it lands
    # What is not a placeholder:
    ("psql < backup.sql > out.txt\n", []),  # redirections, spaced
    ("sort <in.txt >out.txt\n", []),  # `<in.txt >`: a space before `>`: two redirections
    ("cat <<EOF\nhello\nEOF\n", []),  # a here-document
    ("diff <(ls a) <(ls b)\n", []),  # process substitution
    ("cat > pom.xml <<'EOF'\n<project><version>1</version></project>\nEOF\n", []),  # markup that closes
    ("kubectl delete pod worker-<pod_id>-x\n", ["pod_id"]),  # glued to words around it
    ("psql <dump.sql> /dev/null\n", []),  # a file name: a redirection
    ("# replace <service> below with yours\necho hi\n", []),  # a comment is guidance
])
def test_what_is_a_placeholder(source, names):
    _, found, _ = placeholders.template(source)
    assert [p.name for p in found] == names


def test_template_quotes_every_placeholder_as_one_word(tmp_path):
    doc = tmp_path / "rotate.md"
    doc.write_text("# Rotate\n\n## Set it\n```bash\n# set <new_secret> here\n"
                   "railway variables set JWT_SECRET=<new_secret> --service <service>\n"
                   'echo "for <service> at https://<host>/x"\n```\n')
    book = runbook.load(doc)
    assert [(p.name, p.type, p.required, p.line) for p in book.params] == [
        ("new_secret", "secret", True, 6), ("service", "str", True, 6), ("host", "str", True, 7)]
    block = book.steps[0].blocks[0]
    assert block.source.startswith("# set <new_secret> here\n")  # the comment stays as written
    values = runbook.bind_params(book, {"new_secret": "s3cr3t value;rm -rf /", "service": "api", "host": "a b"})
    text = runbook.render(block, values, {})
    assert "JWT_SECRET='s3cr3t value;rm -rf /' --service api" in text
    assert 'echo "for "api" at https://"\'a b\'"/x"' in text
    assert masking.mask("s3cr3t value;rm -rf /") == masking.MASK  # a secret param is masked once bound


def test_a_secret_name_is_a_secret_param():
    assert [placeholders.Placeholder(n, "", 0).secret for n in
            ("new_secret", "api_key", "db_password", "token", "github_token", "keyspace", "service", "monkey")] == [
        True, True, True, True, True, False, False, False]


def test_front_matter_params_keep_angle_brackets_literal_and_validate_explains_them(tmp_path):
    doc = tmp_path / "declared.md"
    doc.write_text("---\nparams:\n  n: {type: int, default: 1}\n---\n## Set\n```sh\nset-it <new_secret>\n```\n")
    _, problems = runbook.inspect(doc)
    assert len(problems) == 1 and problems[0].line == 7
    assert problems[0].message.startswith("<new_secret> is a placeholder for the reader, which bash reads as a "
                                          "redirection: declare a param")


def test_the_common_operations_doc_plans_as_four_steps_with_its_headings():
    book = runbook.load(PLAIN / "common-operations.md")
    assert book.title == "Acme platform: infrastructure"
    assert [(s.title, s.context, len(s.blocks)) for s in book.steps] == [
        ("Deploy New Version", ("Common operations",), 1), ("Database Migration", ("Common operations",), 1),
        ("Scale Workers", ("Common operations",), 1), ("Rotate Secrets", ("Common operations",), 1)]
    assert [(p.name, p.type) for p in book.params] == [("new_secret", "secret")]
    # The `##` section's own text leads into its first step.
    assert book.steps[0].prose.startswith("Run these from a checkout of the main branch")


def test_a_doc_without_a_hash_heading_takes_its_only_outer_heading_as_title(tmp_path):
    doc = tmp_path / "ops.md"
    doc.write_text("## Common operations\n\nFrom a checkout.\n\n### Restart\n```sh\necho restart\n```\n\n"
                   "### Logs\n```sh\necho logs\n```\n")
    book = runbook.load(doc)
    assert book.title == "Common operations" and book.intro == "From a checkout."
    assert [(s.title, s.context) for s in book.steps] == [("Restart", ()), ("Logs", ())]
    single = tmp_path / "single.md"
    single.write_text("## Restart\n```sh\necho restart\n```\n")
    assert runbook.load(single).title == "single"  # a heading that is itself a step is not the title


def test_a_missing_placeholder_value_says_which_and_how(tmp_path):
    doc = tmp_path / "ask.md"
    doc.write_text("## Point\n```sh\ndig <domain>\n```\n")
    book = runbook.load(doc)
    with pytest.raises(UserError) as caught:
        runbook.bind_params(book, {})
    assert caught.value.message == "param 'domain' is required: -p domain=VALUE (str)" and caught.value.line == 3


def test_a_placeholder_in_a_here_document_is_a_problem_with_its_line_and_the_others_still_work(tmp_path):
    doc = tmp_path / "heredoc.md"
    doc.write_text("## Write\n```sh\ncat <<EOF > app.env\npassword: <db_password>\nEOF\nset-it <new_password>\n```\n")
    _, problems = runbook.inspect(doc)
    assert [(p.line, p.message) for p in problems] == [
        (4, '<db_password> cannot be filled in safely here (inside a here-document): set a variable first '
            '(NAME=<db_password>) and use "$NAME" here')]
    source, found, issues = placeholders.template("set-it <new_password>\n")
    assert [p.name for p in found] == ["new_password"] and issues == []
