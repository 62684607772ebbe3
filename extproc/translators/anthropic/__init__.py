"""Anthropic Messages API (``POST /v1/messages``) as a client API.

* To a ``claude`` provider the request and answer pass through
  (:mod:`.native`: model mapping, key, ``anthropic-version``, usage tap).
* To every other provider the request is translated to an OpenAI chat body
  (:mod:`.request`) and handed to that provider's OpenAI->X translator; its
  OpenAI-shaped answer comes back through :mod:`.response` (JSON) or
  :mod:`.stream` (SSE). :mod:`.compose` joins the two halves, so no OpenAI->X
  translator is copied. Errors use Anthropic's shape (:mod:`.errors`).

Reference: https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/docs/build-with-claude/streaming,
https://docs.anthropic.com/en/api/errors.
"""
