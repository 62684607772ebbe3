"""OpenAI Responses API (``POST /v1/responses``) as a client API.

* To a provider that speaks it (``openai``, ``azure``; a spec with
  it in ``native_apis``) the request and answer pass through (:mod:`.native`:
  model mapping, key, usage tap on ``response.completed`` and its siblings).
* To every other provider the request is translated to an OpenAI chat body
  (:mod:`.request`) and handed to that provider's OpenAI->X translator; its
  OpenAI-shaped answer comes back through :mod:`.response` (JSON) or
  :mod:`.stream` (SSE events with ``sequence_number``). :mod:`.compose`
  joins the two halves, as ``translators/anthropic/compose.py`` does.

The gateway keeps no state: ``previous_response_id`` and the stored-response
endpoints only work where the provider is native.

Reference: https://platform.openai.com/docs/api-reference/responses,
https://platform.openai.com/docs/api-reference/responses-streaming.
"""

API = "responses"  # the client API's name (a route's `client_api`, a spec's `native_apis`)
