"""allow/deny patterns (the ASM plugin's checks), with RE2.

They read every text the model will read (`ctx.texts`: all message roles,
text parts, tool call arguments, prompt, input), or the texts of the
configured `roles`. Deny: any text matching blocks. Allow: every text must
match one pattern. Patterns compile in `extproc/providers/regex.py` (RE2:
linear time, so a hostile prompt cannot make a pattern backtrack). Each list
is joined into one alternation: one scan per text.
"""

from __future__ import annotations

from collections.abc import Sequence

from extproc.config.v1 import config_pb2 as pb
from extproc.content.texts import config_roles
from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.request import RequestContext
from extproc.processors.base import Build, Processor
from extproc.providers.regex import compile_any, compile_re2, searcher


def compile_patterns(
    patterns: Sequence[str], field_path: str
) -> tuple[object | None, list[tuple[str, str]]]:
    """One RE2 program for all patterns, or the problems naming each bad pattern."""
    problems = []
    for i, p in enumerate(patterns):
        try:
            compile_re2(p, "")
        except ValueError as e:
            problems.append((f"{field_path}[{i}]", str(e)))
    if problems or not patterns:
        return None, problems
    return compile_any(patterns, field_path), []


class RegexGuard(Processor):
    name = "regex_guard"
    reads_texts = True

    def __init__(
        self, allow: object | None, deny: object | None, roles: frozenset[str] | None = None
    ):
        self._allow = searcher(allow) if allow is not None else None
        self._deny = searcher(deny) if deny is not None else None
        self.roles = roles  # None: every role

    @classmethod
    def from_proto(cls, g: pb.RegexGuard, path: str, b: Build) -> RegexGuard | None:
        """`regex_guard` (or the plugin's own patterns) at field path `path`; None
        when there is nothing to check."""
        allow, pa = compile_patterns(list(g.allow_patterns), f"{path}.allow_patterns")
        deny, pd = compile_patterns(list(g.deny_patterns), f"{path}.deny_patterns")
        roles, pr = config_roles(g.roles, f"{path}.roles")
        for problem in pa + pd + pr:
            b.err(*problem)
        if allow is None and deny is None:
            return None
        return cls(allow, deny, roles)

    async def process(self, ctx: RequestContext) -> Reject | None:
        texts = ctx.texts_for(self.roles)
        deny, allow = self._deny, self._allow
        if deny is not None:
            for t in texts:
                if deny(t):
                    return reject(
                        403,
                        "Request blocked by the gateway's content policy (deny_patterns).",
                        "content_denied",
                        ctx.client_api,
                    )
        if allow is not None:
            for t in texts:
                if not allow(t):
                    return reject(
                        403,
                        "Request blocked by the gateway's content policy "
                        "(a message matches none of allow_patterns).",
                        "content_not_allowed",
                        ctx.client_api,
                    )
        return None
