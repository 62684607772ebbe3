"""Finish reasons and the response id of a whole answer, for traces only.

Read from the answer as the client gets it (its API's shape), only with
tracing on: one more parse of a buffered body. Streams are not read here.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import api_named


def answer_facts(api: ClientApi | str, body: bytes) -> tuple[tuple[str, ...], str]:
    """(finish reasons, response id) of a JSON answer in `api` (or the API of
    that name); ((), "") when unknown."""
    if not isinstance(api, ClientApi):
        api = api_named(api)
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return (), ""
    if not isinstance(obj, dict):
        return (), ""
    reasons = api.finish_reasons(obj)  # where the client's API puts them
    rid = obj.get("id")
    return tuple(x[:64] for x in reasons), rid[:128] if isinstance(rid, str) else ""
