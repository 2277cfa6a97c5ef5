"""How many examples a property test tries: its count under the "default" profile, scaled by the active one.

tests/conftest.py registers the profiles and loads the one HYPOTHESIS_PROFILE names ("default" inside
`make test`, "fuzz" for `make fuzz`). A test states what it runs inside `make test`; under "fuzz" every count
grows by the same factor, so a slow test (a bash process per example) keeps its smaller share of the time.
"""

from __future__ import annotations

from hypothesis import settings


def examples(default_run: int) -> int:
    """`default_run` examples under the "default" profile, proportionally more or fewer under another."""
    factor = settings.default.max_examples / settings.get_profile("default").max_examples
    return max(1, round(default_run * factor))
