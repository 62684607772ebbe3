"""The config compiler: a loaded config -> the immutable `Runtime` (above the
processors it builds; `config/` holds the schema and the runtime objects)."""
