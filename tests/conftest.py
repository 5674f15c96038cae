"""Known product bugs found by the tests, kept visible: each is a strict xfail, so the
test fails loudly once the bug is fixed and the entry must be removed. See the open
issue "Read captures and rebuild every TCP connection" for the plan."""

from __future__ import annotations

import pytest

KNOWN_BUGS: dict[str, str] = {
}


# Found by hypothesis; not strict because a run may not draw a failing example.
FLAKY_BUGS: dict[str, str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.name
        reason = KNOWN_BUGS.get(name) or KNOWN_BUGS.get(name.split("[", 1)[0])
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        flaky = FLAKY_BUGS.get(name.split("[", 1)[0])
        if flaky:
            item.add_marker(pytest.mark.xfail(reason=flaky, strict=False))
