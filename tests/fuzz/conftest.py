"""Fuzz tests: hypothesis at a bounded budget (FUZZ_EXAMPLES per test, default
300 in fuzzing.py: the whole directory takes about 30 s on two cores).
`FUZZ_EXAMPLES=5000 pytest tests/fuzz` runs a longer pass by hand; every crash
found becomes a regression test next to the code's unit tests."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/fuzz/" in str(item.fspath):
            item.add_marker(pytest.mark.fuzz)
