"""A small chat-completions client for the gateway's own calls (the LLM guard,
the query rewriter): below both `guard` and `processors`."""
