"""The one formatter of metric values (opsconsole/text.py): units from names, never an exception."""

from __future__ import annotations


def test_a_huge_number_from_a_health_body_is_shown_not_raised():
    from opsconsole import text

    assert text.metric("size_bytes", 10**400) == str(10**400)  # too big for a float: its digits
    assert text.metric("size_bytes", 7_759_663) == "7.4 MiB" and text.metric("flag", True) == "yes"

