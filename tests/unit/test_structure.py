"""Structure the gateway keeps: provider and client-API facts live in their specs.

Outside `extproc/translators/` and the client-API registry no string literal
names a provider type, a provider wire API or a client API: code asks the
`ProviderSpec` or the `ClientApi` instead of comparing names.
"""

from __future__ import annotations

import ast
from pathlib import Path

from extproc.client_apis.registry import APIS, ROUTE_APIS
from extproc.translators.registry import PROVIDER_CATALOG

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "extproc"
ALLOWED_DIRS = ("extproc/translators/", "extproc/config/v1/")
ALLOWED_FILES = ("extproc/client_apis/registry.py",)
# Same words, other meanings: the provider option `protocol: openai|original`
# and a custom setting's `mode: auto|raw`.
OTHER_MEANINGS = {
    ("extproc/compiler/compile.py", "openai"),
    ("extproc/config/providers.py", "auto"),
    ("extproc/providers/custom_settings.py", "auto"),
    # The Responses API's main endpoint is named as the API is (logs, records).
    ("extproc/content/endpoints.py", "responses"),
}


def _names() -> set[str]:
    names = set(PROVIDER_CATALOG) | {s.wire for s in PROVIDER_CATALOG.values()}
    return names | {a.name for a in APIS} | set(ROUTE_APIS)


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = n.body[0] if n.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_provider_or_client_api_name_outside_the_specs() -> None:
    names = _names()
    assert {"claude", "ollama", "anthropic", "openai", "gemini"} <= names
    found = []
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith(ALLOWED_DIRS) or rel in ALLOWED_FILES:
            continue
        tree = ast.parse(f.read_text())
        docs = _docstrings(tree)
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Constant)
                and isinstance(n.value, str)
                and n.value in names
                and id(n) not in docs
                and (rel, n.value) not in OTHER_MEANINGS
            ):
                found.append(f"{rel}:{n.lineno}: {n.value!r}")
    assert not found, "\n".join(found)
