from __future__ import annotations

import pytest

from extproc.translators.base import HeaderAuth
from extproc.translators.registry import PROVIDER_CATALOG, spec_of


def test_unknown_type_is_value_error() -> None:
    with pytest.raises(ValueError, match="unknown provider type 'nope'"):
        spec_of("nope")


def test_catalog_entries() -> None:
    assert PROVIDER_CATALOG["qwen"].host == "dashscope.aliyuncs.com"
    assert PROVIDER_CATALOG["qwen"].base_path == "/compatible-mode/v1"
    assert PROVIDER_CATALOG["vllm"].host is None
    assert PROVIDER_CATALOG["claude"].embeddings is False
    assert PROVIDER_CATALOG["azure"].auth == HeaderAuth("api-key")
    required = {"openai", "azure", "claude", "gemini", "ollama", "generic", "vllm", "ai360", "yi"}
    assert required <= PROVIDER_CATALOG.keys()


@pytest.mark.parametrize("type_", sorted(PROVIDER_CATALOG))
def test_every_translator_has_contract_methods(type_: str) -> None:
    tr = spec_of(type_).translator
    for name in (
        "chat_request",
        "chat_response",
        "chat_stream",
        "embeddings_request",
        "embeddings_response",
        "error_response",
    ):
        assert callable(getattr(tr, name)), name
