"""Provider translators: one module per provider API, looked up via registry."""
