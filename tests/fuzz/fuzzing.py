"""Shared hypothesis settings and strategies for the fuzz tests."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def _words(text: str) -> list[str]:
    return text.split()


# Keys the gateway reads somewhere (requests, responses, streams), so that
# generated objects reach past the first "not a dict / missing key" check.
KEYS = _words(
    "args arguments authorization blockReason cache_creation_input_tokens "
    "cache_read_input_tokens cachedContentTokenCount cached_tokens candidates "
    "candidatesTokenCount choices code completion_tokens completion_tokens_details content "
    "content_block context created delta description dimensions done done_reason embedding "
    "embeddings encoding_format error eval_count finishReason finish_reason format function "
    "functionCall function_call generationConfig id image_url images include_usage index input "
    "input_tokens instructions json_schema keep_alive key max_completion_tokens max_tokens "
    "message messages model modelVersion n name num_predict object options output "
    "output_tokens parameters partial_json parts prompt promptFeedback promptTokenCount "
    "prompt_eval_count prompt_tokens prompt_tokens_details reasoning_content reasoning_tokens "
    "refusal response responseId response_format role safetySettings stop stop_reason "
    "stop_sequences stream stream_options suffix system systemInstruction temperature text "
    "thinking thought thoughtsTokenCount tool_call_id tool_calls tool_choice tools "
    "totalTokenCount total_tokens type url usage usageMetadata user call_id namespace "
    "max_output_tokens previous_response_id parallel_tool_calls"
)
WORDS = _words(
    "user system assistant tool developer function text image_url input_audio refusal "
    "tool_use tool_result thinking message_start content_block_start content_block_delta "
    "content_block_stop message_delta message_stop ping error text_delta input_json_delta "
    "thinking_delta stop end_turn max_tokens tool_calls length STOP MAX_TOKENS SAFETY "
    "chat.completion chat.completion.chunk qwen-turbo gpt-4o [DONE] 账号 "
    "message function_call function_call_output reasoning input_text output_text input_image "
    "response.completed response.created response.failed"
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(WORDS),
    st.text(max_size=20),
)


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """JSON values whose objects mostly use the gateway's keys."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6
            ),
        ),
        max_leaves=max_leaves,
    )


def json_objects(max_leaves: int = 30) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(KEYS), json_values(max_leaves), max_size=8)


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` cut into chunks at arbitrary points (inside UTF-8 characters too)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    out, prev = [], 0
    for c in [*cuts, len(data)]:
        out.append(data[prev:c])
        prev = c
    return out


def openai_objects() -> st.SearchStrategy[dict[str, Any]]:
    """OpenAI chat completions and chunks, any field of the wrong shape: the
    common currency every translator reads back (Anthropic clients included)."""
    v = json_values(4)
    fn = st.one_of(v, st.fixed_dictionaries({}, optional={"name": v, "arguments": v}))
    call = st.one_of(
        v, st.fixed_dictionaries({}, optional={"id": v, "index": v, "type": v, "function": fn})
    )
    calls = st.one_of(v, st.lists(call, max_size=3))
    msg = st.one_of(
        v,
        st.fixed_dictionaries(
            {},
            optional={"role": v, "content": v, "reasoning_content": v, "tool_calls": calls},
        ),
    )
    choice = st.one_of(
        v,
        st.fixed_dictionaries(
            {}, optional={"index": v, "message": msg, "delta": msg, "finish_reason": v}
        ),
    )
    usage = st.one_of(
        v,
        st.fixed_dictionaries(
            {},
            optional={
                "prompt_tokens": v,
                "completion_tokens": v,
                "total_tokens": v,
                "prompt_tokens_details": v,
                "completion_tokens_details": v,
            },
        ),
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "id": v,
            "object": v,
            "model": v,
            "choices": st.one_of(v, st.lists(choice, max_size=3)),
            "usage": usage,
            "error": v,
        },
    )
