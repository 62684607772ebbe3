"""The intelligent guard: an LLM that judges whether a prompt may be sent upstream.

Sans-IO pieces (``prompt``, ``verdict``, ``cache``) plus ``client``, which asks the
guard model through the shared chat client (``extproc/chat/client.py``).
What to do with a verdict is the ``llm_guard`` processor's business.
"""

from extproc.guard.cache import VerdictCache
from extproc.guard.client import GuardClient
from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT, build_guard_request
from extproc.guard.verdict import Verdict, parse_guard_reply

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "GuardClient",
    "Verdict",
    "VerdictCache",
    "build_guard_request",
    "parse_guard_reply",
]
