"""The one function that picks the leg of a request, or of a fallback attempt.

The route's client API (a `ClientApi` from `client_apis/registry.py`) and the
provider's spec decide: a fallback route's router-level request gets the
`FallbackLeg` (Envoy makes the attempts); a request the gateway does not model,
a bodyless one or one for a `protocol: original` provider passes through;
otherwise the client API's entry in `LEGS` picks the native leg (the provider
serves the API itself) or the translated one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import (
    ANTHROPIC,
    ANTHROPIC_COUNT_TOKENS,
    CHAT,
    EMBEDDINGS,
    OLLAMA,
    OPENAI,
    OTHER,
    RESPONSES,
    api_of,
    endpoint_named,
)
from extproc.config.runtime import ProviderRuntime, RouteRuntime
from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.fallback_leg import fallback_leg
from extproc.core.legs import (
    BodyLeg,
    Leg,
    OllamaNativeLeg,
    OpenAICompatLeg,
    TranslatedLeg,
    passthrough,
    resolve_target,
)
from extproc.core.legs_anthropic import AnthropicNativeLeg, AnthropicTranslatedLeg
from extproc.core.legs_responses import open_responses_leg
from extproc.core.request import RequestContext

# (route, endpoint, api, provider, body) -> the leg of a request the gateway reads.
LegOpener = Callable[[RouteRuntime, str, ClientApi, ProviderRuntime, dict[str, Any]], Leg | Reject]


def open_leg(
    ctx: RequestContext,
    prov: ProviderRuntime | None = None,
    *,
    namespace: str = "",
    attempt: bool = False,
    bodyless: bool = False,
    api: ClientApi | None = None,
) -> Leg | Reject:
    """The leg for a request (or a Reject: policy, no token, unsupported).

    ``prov``: the provider (default: the route picks one); ``attempt``: one
    attempt of a fallback route (its provider given); ``bodyless``: a request
    without a body (only the key goes on); ``namespace``: the dynamic metadata
    namespace a fallback route's request writes to; ``api``: the request's
    client API when the caller resolved it already (the exchange has)."""
    route, endpoint = ctx.route, ctx.endpoint
    if api is None:
        api = api_of(endpoint, route.client_api)
    if route.fallback is not None and not attempt:
        return fallback_leg(ctx, api, namespace)
    prov = prov if prov is not None else route.pick_provider()
    native_only = endpoint_named(endpoint).native_only
    if native_only and not prov.spec.serves(api.name):
        return reject(
            404,
            f"The gateway keeps no {api.title} API state: provider {prov.name!r} ({prov.type}) "
            f"does not serve the {api.title} API itself, so nothing was stored to read.",
            "not_stored",
            api,
        )
    if bodyless or endpoint == OTHER or native_only:
        return passthrough(route, prov, api)
    if endpoint == EMBEDDINGS and not prov.spec.embeddings:
        return reject(
            400,
            f"Provider {prov.name!r} ({prov.type}) has no embeddings API.",
            "embeddings_unsupported",
            api,
        )
    if prov.protocol == "original" and api.honours_original:
        return passthrough(route, prov, api)
    leg = LEGS[api.name](route, endpoint, api, prov, ctx.body)
    if attempt and isinstance(leg, BodyLeg):
        # The usage chunk goes up to the router-level exchange, which meters
        # it and hides it from a client that did not ask for it.
        leg.include_usage = True
    return leg


def _openai(
    route: RouteRuntime, endpoint: str, api: ClientApi, prov: ProviderRuntime, body: dict[str, Any]
) -> Leg | Reject:
    resolved = resolve_target(route, endpoint, api, prov, body)
    if isinstance(resolved, Reject):
        return resolved
    target, requested, include_usage = resolved
    args = (route, prov, target, requested, include_usage)
    if endpoint == EMBEDDINGS:
        return TranslatedLeg(*args, embeddings=True)
    if endpoint == CHAT and prov.spec.serves(api.name):
        return OpenAICompatLeg(*args)
    return TranslatedLeg(*args)


def _ollama(
    route: RouteRuntime, endpoint: str, api: ClientApi, prov: ProviderRuntime, body: dict[str, Any]
) -> Leg | Reject:
    # Only to providers that serve it (the config checks that).
    resolved = resolve_target(route, endpoint, api, prov, body)
    if isinstance(resolved, Reject):
        return resolved
    target, requested, include_usage = resolved
    return OllamaNativeLeg(route, prov, target, requested, include_usage)


def _anthropic(
    route: RouteRuntime, endpoint: str, api: ClientApi, prov: ProviderRuntime, body: dict[str, Any]
) -> Leg | Reject:
    count = endpoint == ANTHROPIC_COUNT_TOKENS
    native = prov.spec.serves(api.name)
    if count and not native:
        return reject(
            501,
            f"count_tokens is only available from a provider that serves the Messages API; "
            f"provider {prov.name!r} ({prov.type}) has no token counting API.",
            "count_tokens_unsupported",
            api,
        )
    resolved = resolve_target(route, endpoint, api, prov, body)
    if isinstance(resolved, Reject):
        return resolved
    target, requested, _ = resolved
    args = (route, prov, target, requested, False)
    if native:
        return AnthropicNativeLeg(*args, count_tokens=count)
    return AnthropicTranslatedLeg(*args)


# Each client API's legs, by its name.
LEGS: dict[str, LegOpener] = {
    OPENAI.name: _openai,
    ANTHROPIC.name: _anthropic,
    RESPONSES.name: open_responses_leg,
    OLLAMA.name: _ollama,
}
