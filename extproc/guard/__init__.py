"""The intelligent guard: an LLM that judges whether a prompt may be sent upstream.

Sans-IO pieces (``prompt``, ``verdict``, ``cache``, ``policy``) plus a thin httpx
transport (``client``).
"""

from extproc.guard.cache import VerdictCache
from extproc.guard.client import GuardClient
from extproc.guard.policy import decide, judged_text
from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT, build_guard_request
from extproc.guard.verdict import Verdict, parse_guard_reply

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "GuardClient",
    "Verdict",
    "VerdictCache",
    "build_guard_request",
    "decide",
    "judged_text",
    "parse_guard_reply",
]
