import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PluginConfig(_message.Message):
    __slots__ = ("hosts", "api_key", "api_key_env", "api_key_file", "allow_patterns", "deny_patterns", "intelligent_guard", "default_model", "processors", "auth", "roles")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    DENY_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    INTELLIGENT_GUARD_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    PROCESSORS_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedScalarFieldContainer[str]
    api_key: str
    api_key_env: str
    api_key_file: str
    allow_patterns: _containers.RepeatedScalarFieldContainer[str]
    deny_patterns: _containers.RepeatedScalarFieldContainer[str]
    intelligent_guard: IntelligentGuard
    default_model: str
    processors: _containers.RepeatedCompositeFieldContainer[Processor]
    auth: RouteAuth
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hosts: _Optional[_Iterable[str]] = ..., api_key: _Optional[str] = ..., api_key_env: _Optional[str] = ..., api_key_file: _Optional[str] = ..., allow_patterns: _Optional[_Iterable[str]] = ..., deny_patterns: _Optional[_Iterable[str]] = ..., intelligent_guard: _Optional[_Union[IntelligentGuard, _Mapping]] = ..., default_model: _Optional[str] = ..., processors: _Optional[_Iterable[_Union[Processor, _Mapping]]] = ..., auth: _Optional[_Union[RouteAuth, _Mapping]] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class IntelligentGuard(_message.Message):
    __slots__ = ("host", "port", "path", "model", "api_key", "api_key_env", "api_key_file", "provider", "timeout", "on_error", "judge", "system_prompt", "show_reason", "cache_ttl", "cache_size", "max_concurrency", "tls", "roles")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_ERROR_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SHOW_REASON_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_FIELD_NUMBER: _ClassVar[int]
    CACHE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    path: str
    model: str
    api_key: str
    api_key_env: str
    api_key_file: str
    provider: str
    timeout: _duration_pb2.Duration
    on_error: str
    judge: str
    system_prompt: str
    show_reason: _wrappers_pb2.BoolValue
    cache_ttl: _duration_pb2.Duration
    cache_size: int
    max_concurrency: int
    tls: _wrappers_pb2.BoolValue
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., path: _Optional[str] = ..., model: _Optional[str] = ..., api_key: _Optional[str] = ..., api_key_env: _Optional[str] = ..., api_key_file: _Optional[str] = ..., provider: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., on_error: _Optional[str] = ..., judge: _Optional[str] = ..., system_prompt: _Optional[str] = ..., show_reason: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., cache_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache_size: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., tls: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class GatewayConfig(_message.Message):
    __slots__ = ("providers", "routes", "consumers", "limits", "observability", "budgets", "unmatched")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    OBSERVABILITY_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    UNMATCHED_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    consumers: _containers.RepeatedCompositeFieldContainer[Consumer]
    limits: Limits
    observability: Observability
    budgets: Budgets
    unmatched: str
    def __init__(self, providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., consumers: _Optional[_Iterable[_Union[Consumer, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., observability: _Optional[_Union[Observability, _Mapping]] = ..., budgets: _Optional[_Union[Budgets, _Mapping]] = ..., unmatched: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_request_bytes", "max_response_bytes", "max_stream_line_bytes")
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_LINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_request_bytes: int
    max_response_bytes: int
    max_stream_line_bytes: int
    def __init__(self, max_request_bytes: _Optional[int] = ..., max_response_bytes: _Optional[int] = ..., max_stream_line_bytes: _Optional[int] = ...) -> None: ...

class Observability(_message.Message):
    __slots__ = ("metadata_namespace", "debug_log_prompts", "tracing", "prices", "no_default_prices", "overhead_header")
    METADATA_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DEBUG_LOG_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    TRACING_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    NO_DEFAULT_PRICES_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_HEADER_FIELD_NUMBER: _ClassVar[int]
    metadata_namespace: str
    debug_log_prompts: bool
    tracing: Tracing
    prices: _containers.RepeatedCompositeFieldContainer[Price]
    no_default_prices: bool
    overhead_header: bool
    def __init__(self, metadata_namespace: _Optional[str] = ..., debug_log_prompts: _Optional[bool] = ..., tracing: _Optional[_Union[Tracing, _Mapping]] = ..., prices: _Optional[_Iterable[_Union[Price, _Mapping]]] = ..., no_default_prices: _Optional[bool] = ..., overhead_header: _Optional[bool] = ...) -> None: ...

class Tracing(_message.Message):
    __slots__ = ("enabled", "protocol", "endpoint", "service_name", "insecure")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    protocol: str
    endpoint: str
    service_name: str
    insecure: bool
    def __init__(self, enabled: _Optional[bool] = ..., protocol: _Optional[str] = ..., endpoint: _Optional[str] = ..., service_name: _Optional[str] = ..., insecure: _Optional[bool] = ...) -> None: ...

class Price(_message.Message):
    __slots__ = ("provider", "model", "input", "output", "cached_input")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    input: float
    output: float
    cached_input: float
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., input: _Optional[float] = ..., output: _Optional[float] = ..., cached_input: _Optional[float] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("name", "type", "api_tokens", "api_tokens_env", "api_tokens_file", "timeout", "token_cooldown", "model_mapping", "custom_settings", "protocol", "host", "base_path", "base_url", "default_model", "default_stream", "stream_usage", "options", "aws", "gcp")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    API_TOKENS_FIELD_NUMBER: _ClassVar[int]
    API_TOKENS_ENV_FIELD_NUMBER: _ClassVar[int]
    API_TOKENS_FILE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COOLDOWN_FIELD_NUMBER: _ClassVar[int]
    MODEL_MAPPING_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    BASE_PATH_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STREAM_FIELD_NUMBER: _ClassVar[int]
    STREAM_USAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    AWS_FIELD_NUMBER: _ClassVar[int]
    GCP_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    api_tokens: _containers.RepeatedScalarFieldContainer[str]
    api_tokens_env: _containers.RepeatedScalarFieldContainer[str]
    api_tokens_file: _containers.RepeatedScalarFieldContainer[str]
    timeout: _duration_pb2.Duration
    token_cooldown: _duration_pb2.Duration
    model_mapping: _containers.RepeatedCompositeFieldContainer[ModelMappingEntry]
    custom_settings: _containers.RepeatedCompositeFieldContainer[CustomSetting]
    protocol: str
    host: str
    base_path: str
    base_url: str
    default_model: str
    default_stream: _wrappers_pb2.BoolValue
    stream_usage: _wrappers_pb2.BoolValue
    options: _struct_pb2.Struct
    aws: AwsCredentials
    gcp: GcpCredentials
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., api_tokens: _Optional[_Iterable[str]] = ..., api_tokens_env: _Optional[_Iterable[str]] = ..., api_tokens_file: _Optional[_Iterable[str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., token_cooldown: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., model_mapping: _Optional[_Iterable[_Union[ModelMappingEntry, _Mapping]]] = ..., custom_settings: _Optional[_Iterable[_Union[CustomSetting, _Mapping]]] = ..., protocol: _Optional[str] = ..., host: _Optional[str] = ..., base_path: _Optional[str] = ..., base_url: _Optional[str] = ..., default_model: _Optional[str] = ..., default_stream: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., stream_usage: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., options: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., aws: _Optional[_Union[AwsCredentials, _Mapping]] = ..., gcp: _Optional[_Union[GcpCredentials, _Mapping]] = ...) -> None: ...

class AwsCredentials(_message.Message):
    __slots__ = ("access_key_id", "access_key_id_env", "access_key_id_file", "secret_access_key", "secret_access_key_env", "secret_access_key_file", "session_token", "session_token_env", "session_token_file")
    ACCESS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_KEY_ID_ENV_FIELD_NUMBER: _ClassVar[int]
    ACCESS_KEY_ID_FILE_FIELD_NUMBER: _ClassVar[int]
    SECRET_ACCESS_KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_ACCESS_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    SECRET_ACCESS_KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_ENV_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FILE_FIELD_NUMBER: _ClassVar[int]
    access_key_id: str
    access_key_id_env: str
    access_key_id_file: str
    secret_access_key: str
    secret_access_key_env: str
    secret_access_key_file: str
    session_token: str
    session_token_env: str
    session_token_file: str
    def __init__(self, access_key_id: _Optional[str] = ..., access_key_id_env: _Optional[str] = ..., access_key_id_file: _Optional[str] = ..., secret_access_key: _Optional[str] = ..., secret_access_key_env: _Optional[str] = ..., secret_access_key_file: _Optional[str] = ..., session_token: _Optional[str] = ..., session_token_env: _Optional[str] = ..., session_token_file: _Optional[str] = ...) -> None: ...

class GcpCredentials(_message.Message):
    __slots__ = ("service_account_json", "service_account_json_env", "service_account_json_file")
    SERVICE_ACCOUNT_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_JSON_ENV_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_JSON_FILE_FIELD_NUMBER: _ClassVar[int]
    service_account_json: str
    service_account_json_env: str
    service_account_json_file: str
    def __init__(self, service_account_json: _Optional[str] = ..., service_account_json_env: _Optional[str] = ..., service_account_json_file: _Optional[str] = ...) -> None: ...

class ModelMappingEntry(_message.Message):
    __slots__ = ("to",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    to: str
    def __init__(self, to: _Optional[str] = ..., **kwargs) -> None: ...

class CustomSetting(_message.Message):
    __slots__ = ("name", "value", "mode", "overwrite")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: _struct_pb2.Value
    mode: str
    overwrite: _wrappers_pb2.BoolValue
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., mode: _Optional[str] = ..., overwrite: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("name", "match", "provider", "providers", "processors", "allow_streaming", "allow_non_streaming", "client_api", "auth", "rewrite", "fallback", "retry", "cache")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    PROCESSORS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_STREAMING_FIELD_NUMBER: _ClassVar[int]
    ALLOW_NON_STREAMING_FIELD_NUMBER: _ClassVar[int]
    CLIENT_API_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    REWRITE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    name: str
    match: RouteMatch
    provider: str
    providers: _containers.RepeatedCompositeFieldContainer[WeightedProvider]
    processors: _containers.RepeatedCompositeFieldContainer[Processor]
    allow_streaming: _wrappers_pb2.BoolValue
    allow_non_streaming: _wrappers_pb2.BoolValue
    client_api: str
    auth: RouteAuth
    rewrite: _wrappers_pb2.BoolValue
    fallback: _containers.RepeatedScalarFieldContainer[str]
    retry: RouteRetry
    cache: RouteCache
    def __init__(self, name: _Optional[str] = ..., match: _Optional[_Union[RouteMatch, _Mapping]] = ..., provider: _Optional[str] = ..., providers: _Optional[_Iterable[_Union[WeightedProvider, _Mapping]]] = ..., processors: _Optional[_Iterable[_Union[Processor, _Mapping]]] = ..., allow_streaming: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., allow_non_streaming: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., client_api: _Optional[str] = ..., auth: _Optional[_Union[RouteAuth, _Mapping]] = ..., rewrite: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., fallback: _Optional[_Iterable[str]] = ..., retry: _Optional[_Union[RouteRetry, _Mapping]] = ..., cache: _Optional[_Union[RouteCache, _Mapping]] = ...) -> None: ...

class RouteCache(_message.Message):
    __slots__ = ("ttl", "backend", "redis_url", "max_entry_bytes", "key_includes", "shared", "cache_tool_results", "max_entries", "max_bytes", "lookup_timeout")
    TTL_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REDIS_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRY_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEY_INCLUDES_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    CACHE_TOOL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    backend: str
    redis_url: str
    max_entry_bytes: int
    key_includes: _containers.RepeatedScalarFieldContainer[str]
    shared: bool
    cache_tool_results: bool
    max_entries: int
    max_bytes: int
    lookup_timeout: _duration_pb2.Duration
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backend: _Optional[str] = ..., redis_url: _Optional[str] = ..., max_entry_bytes: _Optional[int] = ..., key_includes: _Optional[_Iterable[str]] = ..., shared: _Optional[bool] = ..., cache_tool_results: _Optional[bool] = ..., max_entries: _Optional[int] = ..., max_bytes: _Optional[int] = ..., lookup_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RouteRetry(_message.Message):
    __slots__ = ("retry_on", "max_attempts", "per_try_timeout")
    RETRY_ON_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PER_TRY_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    retry_on: _containers.RepeatedScalarFieldContainer[str]
    max_attempts: int
    per_try_timeout: _duration_pb2.Duration
    def __init__(self, retry_on: _Optional[_Iterable[str]] = ..., max_attempts: _Optional[int] = ..., per_try_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RouteMatch(_message.Message):
    __slots__ = ("hosts", "path_prefix", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: StringMatch
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[StringMatch, _Mapping]] = ...) -> None: ...
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedScalarFieldContainer[str]
    path_prefix: str
    headers: _containers.MessageMap[str, StringMatch]
    def __init__(self, hosts: _Optional[_Iterable[str]] = ..., path_prefix: _Optional[str] = ..., headers: _Optional[_Mapping[str, StringMatch]] = ...) -> None: ...

class StringMatch(_message.Message):
    __slots__ = ("exact", "prefix", "regex")
    EXACT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    exact: str
    prefix: str
    regex: str
    def __init__(self, exact: _Optional[str] = ..., prefix: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class WeightedProvider(_message.Message):
    __slots__ = ("provider", "weight")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    weight: int
    def __init__(self, provider: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class RouteAuth(_message.Message):
    __slots__ = ("required", "key_sources", "forward_consumer_header")
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    KEY_SOURCES_FIELD_NUMBER: _ClassVar[int]
    FORWARD_CONSUMER_HEADER_FIELD_NUMBER: _ClassVar[int]
    required: bool
    key_sources: _containers.RepeatedScalarFieldContainer[str]
    forward_consumer_header: str
    def __init__(self, required: _Optional[bool] = ..., key_sources: _Optional[_Iterable[str]] = ..., forward_consumer_header: _Optional[str] = ...) -> None: ...

class Consumer(_message.Message):
    __slots__ = ("name", "keys", "keys_env", "keys_file", "allowed_models", "allowed_routes", "token_budget", "cache_disabled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEYS_ENV_FIELD_NUMBER: _ClassVar[int]
    KEYS_FILE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_MODELS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ROUTES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    CACHE_DISABLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    keys_env: _containers.RepeatedScalarFieldContainer[str]
    keys_file: _containers.RepeatedScalarFieldContainer[str]
    allowed_models: _containers.RepeatedScalarFieldContainer[str]
    allowed_routes: _containers.RepeatedScalarFieldContainer[str]
    token_budget: int
    cache_disabled: bool
    def __init__(self, name: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., keys_env: _Optional[_Iterable[str]] = ..., keys_file: _Optional[_Iterable[str]] = ..., allowed_models: _Optional[_Iterable[str]] = ..., allowed_routes: _Optional[_Iterable[str]] = ..., token_budget: _Optional[int] = ..., cache_disabled: _Optional[bool] = ...) -> None: ...

class Budgets(_message.Message):
    __slots__ = ("window", "backend", "redis_url", "default_output_tokens")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REDIS_URL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    backend: str
    redis_url: str
    default_output_tokens: int
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backend: _Optional[str] = ..., redis_url: _Optional[str] = ..., default_output_tokens: _Optional[int] = ...) -> None: ...

class Processor(_message.Message):
    __slots__ = ("regex_guard", "llm_guard", "prompt_decorator", "context", "llm_rewrite", "custom")
    REGEX_GUARD_FIELD_NUMBER: _ClassVar[int]
    LLM_GUARD_FIELD_NUMBER: _ClassVar[int]
    PROMPT_DECORATOR_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LLM_REWRITE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    regex_guard: RegexGuard
    llm_guard: IntelligentGuard
    prompt_decorator: PromptDecorator
    context: ContextProcessor
    llm_rewrite: LlmRewrite
    custom: CustomProcessor
    def __init__(self, regex_guard: _Optional[_Union[RegexGuard, _Mapping]] = ..., llm_guard: _Optional[_Union[IntelligentGuard, _Mapping]] = ..., prompt_decorator: _Optional[_Union[PromptDecorator, _Mapping]] = ..., context: _Optional[_Union[ContextProcessor, _Mapping]] = ..., llm_rewrite: _Optional[_Union[LlmRewrite, _Mapping]] = ..., custom: _Optional[_Union[CustomProcessor, _Mapping]] = ...) -> None: ...

class CustomProcessor(_message.Message):
    __slots__ = ("name", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RegexGuard(_message.Message):
    __slots__ = ("allow_patterns", "deny_patterns", "roles")
    ALLOW_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    DENY_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    allow_patterns: _containers.RepeatedScalarFieldContainer[str]
    deny_patterns: _containers.RepeatedScalarFieldContainer[str]
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, allow_patterns: _Optional[_Iterable[str]] = ..., deny_patterns: _Optional[_Iterable[str]] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class PromptDecorator(_message.Message):
    __slots__ = ("prepend", "append")
    PREPEND_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    prepend: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    append: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    def __init__(self, prepend: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., append: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ...) -> None: ...

class ContextProcessor(_message.Message):
    __slots__ = ("file", "url", "refresh", "max_bytes")
    FILE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    file: str
    url: str
    refresh: _duration_pb2.Duration
    max_bytes: int
    def __init__(self, file: _Optional[str] = ..., url: _Optional[str] = ..., refresh: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class LlmRewrite(_message.Message):
    __slots__ = ("provider", "host", "port", "path", "api_key", "api_key_env", "model", "system_prompt", "timeout", "on_error", "tls")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_ERROR_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    host: str
    port: int
    path: str
    api_key: str
    api_key_env: str
    model: str
    system_prompt: str
    timeout: _duration_pb2.Duration
    on_error: str
    tls: _wrappers_pb2.BoolValue
    def __init__(self, provider: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., path: _Optional[str] = ..., api_key: _Optional[str] = ..., api_key_env: _Optional[str] = ..., model: _Optional[str] = ..., system_prompt: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., on_error: _Optional[str] = ..., tls: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ...) -> None: ...

class AsmObjectMeta(_message.Message):
    __slots__ = ("name", "namespace", "labels", "annotations")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LLMProvider(_message.Message):
    __slots__ = ("api_version", "kind", "metadata", "spec")
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    api_version: str
    kind: str
    metadata: AsmObjectMeta
    spec: LLMProviderSpec
    def __init__(self, api_version: _Optional[str] = ..., kind: _Optional[str] = ..., metadata: _Optional[_Union[AsmObjectMeta, _Mapping]] = ..., spec: _Optional[_Union[LLMProviderSpec, _Mapping]] = ...) -> None: ...

class LLMProviderSpec(_message.Message):
    __slots__ = ("host", "path", "configs", "type")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    host: str
    path: str
    configs: LLMProviderConfigs
    type: str
    def __init__(self, host: _Optional[str] = ..., path: _Optional[str] = ..., configs: _Optional[_Union[LLMProviderConfigs, _Mapping]] = ..., type: _Optional[str] = ...) -> None: ...

class LLMProviderConfigs(_message.Message):
    __slots__ = ("default_config", "route_specific_configs")
    class RouteSpecificConfigsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LLMConfig
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LLMConfig, _Mapping]] = ...) -> None: ...
    DEFAULT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ROUTE_SPECIFIC_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    default_config: LLMConfig
    route_specific_configs: _containers.MessageMap[str, LLMConfig]
    def __init__(self, default_config: _Optional[_Union[LLMConfig, _Mapping]] = ..., route_specific_configs: _Optional[_Mapping[str, LLMConfig]] = ...) -> None: ...

class LLMConfig(_message.Message):
    __slots__ = ("open_ai_config",)
    OPEN_AI_CONFIG_FIELD_NUMBER: _ClassVar[int]
    open_ai_config: OpenAIConfig
    def __init__(self, open_ai_config: _Optional[_Union[OpenAIConfig, _Mapping]] = ...) -> None: ...

class OpenAIConfig(_message.Message):
    __slots__ = ("model", "stream", "api_key")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    model: str
    stream: bool
    api_key: str
    def __init__(self, model: _Optional[str] = ..., stream: _Optional[bool] = ..., api_key: _Optional[str] = ...) -> None: ...

class LLMRoute(_message.Message):
    __slots__ = ("api_version", "kind", "metadata", "spec")
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    api_version: str
    kind: str
    metadata: AsmObjectMeta
    spec: LLMRouteSpec
    def __init__(self, api_version: _Optional[str] = ..., kind: _Optional[str] = ..., metadata: _Optional[_Union[AsmObjectMeta, _Mapping]] = ..., spec: _Optional[_Union[LLMRouteSpec, _Mapping]] = ...) -> None: ...

class LLMRouteSpec(_message.Message):
    __slots__ = ("host", "rules")
    HOST_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    host: str
    rules: _containers.RepeatedCompositeFieldContainer[LLMRouteRule]
    def __init__(self, host: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[LLMRouteRule, _Mapping]]] = ...) -> None: ...

class LLMRouteRule(_message.Message):
    __slots__ = ("name", "matches", "backend_refs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_REFS_FIELD_NUMBER: _ClassVar[int]
    name: str
    matches: _containers.RepeatedCompositeFieldContainer[LLMRouteMatch]
    backend_refs: _containers.RepeatedCompositeFieldContainer[LLMBackendRef]
    def __init__(self, name: _Optional[str] = ..., matches: _Optional[_Iterable[_Union[LLMRouteMatch, _Mapping]]] = ..., backend_refs: _Optional[_Iterable[_Union[LLMBackendRef, _Mapping]]] = ...) -> None: ...

class LLMRouteMatch(_message.Message):
    __slots__ = ("headers",)
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: StringMatch
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[StringMatch, _Mapping]] = ...) -> None: ...
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    headers: _containers.MessageMap[str, StringMatch]
    def __init__(self, headers: _Optional[_Mapping[str, StringMatch]] = ...) -> None: ...

class LLMBackendRef(_message.Message):
    __slots__ = ("provider_host", "weight")
    PROVIDER_HOST_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    provider_host: str
    weight: int
    def __init__(self, provider_host: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...
