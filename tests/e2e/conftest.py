import pytest

from harness import default_transport


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def pytest_report_header() -> str:
    # Every Stack runs our server with --transport from $LLM_EXTPROC_TRANSPORT;
    # test/all.sh runs this directory once per transport.
    return f"llm-extproc e2e transport: {default_transport()}"
