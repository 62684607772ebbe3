"""bedrock and vertex providers in config: defaults from the region, credentials
from secret references, every mistake reported by field path (no secret shown)."""

from __future__ import annotations

import json

import pytest

from extproc.cloud.auth import AwsSigV4Auth, GoogleBearerAuth
from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text

ROUTE = "routes:\n- {name: r, match: {hosts: [a.test]}, provider: p}\n"
SA = json.dumps(
    {
        "type": "service_account",
        "client_email": "x@p.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
)


def compile_one(provider: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return compile_config(load_text(f"providers:\n- {provider}\n{ROUTE}"), env=env or {})


def problems(provider: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        compile_one(provider, env)
    return list(e.value.problems)


def test_bedrock_defaults_from_the_region_and_static_keys() -> None:
    rt = compile_one(
        "{name: p, type: bedrock, options: {region: eu-central-1},"
        " aws: {access_key_id: AKID, secret_access_key_env: SK, session_token: tok}}",
        {"SK": "s3cr3t"},
    )
    prov = rt.providers["p"]
    assert (prov.host, prov.base_path) == ("bedrock-runtime.eu-central-1.amazonaws.com", "")
    assert isinstance(prov.upstream_auth, AwsSigV4Auth)
    assert prov.upstream_auth.signer.region == "eu-central-1"
    creds = prov.upstream_auth.source.current()
    assert (creds.access_key, creds.secret_key, creds.token) == ("AKID", "s3cr3t", "tok")
    assert prov.tokens is None
    assert rt.services == (prov.upstream_auth,)
    # An answer echoing the secret or the session token never shows them.
    rt2 = compile_one(
        "{name: p, type: bedrock, options: {region: eu-central-1},"
        " aws: {access_key_id: AKID, secret_access_key: long-secret-key-1, session_token: session-token-22}}"
    )
    red = rt2.providers["p"].redactor
    assert red.body(b"a long-secret-key-1 b session-token-22") == b"a [redacted] b [redacted]"


def test_bedrock_without_keys_uses_the_chain_loaded_at_start() -> None:
    rt = compile_one("{name: p, type: bedrock, options: {region: us-east-1}}")
    auth = rt.providers["p"].upstream_auth
    assert isinstance(auth, AwsSigV4Auth)
    with pytest.raises(Exception, match="not loaded yet"):
        auth.token()  # compiling resolved nothing: start() does, off the request path


def test_endpoint_and_host_override_the_region_host() -> None:
    rt = compile_one(
        "{name: p, type: bedrock, options: {region: us-east-1,"
        " endpoint: 'https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com/base'}}"
    )
    prov = rt.providers["p"]
    assert (prov.host, prov.base_path) == (
        "vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com",
        "/base",
    )
    rt = compile_one(
        "{name: p, type: bedrock, host: 'br.internal:8443', options: {region: us-east-1}}"
    )
    assert rt.providers["p"].host == "br.internal:8443"


def test_vertex_defaults_and_service_account() -> None:
    rt = compile_one(
        "{name: p, type: vertex, options: {project: my-proj-1, region: europe-west4},"
        " gcp: {service_account_json_env: SA}}",
        {"SA": SA},
    )
    prov = rt.providers["p"]
    assert (prov.host, prov.base_path) == ("europe-west4-aiplatform.googleapis.com", "/v1")
    assert isinstance(prov.upstream_auth, GoogleBearerAuth)
    global_rt = compile_one(
        "{name: p, type: vertex, options: {project: my-proj-1, region: global}}"
    )
    assert global_rt.providers["p"].host == "aiplatform.googleapis.com"


@pytest.mark.parametrize(
    ("provider", "path", "words"),
    [
        ("{name: p, type: bedrock}", "providers[0].options.region", "required"),
        (
            "{name: p, type: bedrock, options: {region: 'US East'}}",
            "providers[0].options.region",
            "not a region",
        ),
        ("{name: p, type: bedrock, options: {region: 3}}", "providers[0].options.region", "string"),
        (
            "{name: p, type: bedrock, options: {region: us-east-1, endpoint: 'ftp://x'}}",
            "providers[0].options.endpoint",
            "http",
        ),
        (
            "{name: p, type: bedrock, options: {region: us-east-1}, aws: {access_key_id: A}}",
            "providers[0].aws",
            "secret_access_key",
        ),
        (
            "{name: p, type: bedrock, options: {region: us-east-1}, aws: {access_key_id: A, secret_access_key_env: NOPE}}",
            "providers[0].aws.secret_access_key",
            "NOPE",
        ),
        (
            "{name: p, type: bedrock, options: {region: us-east-1}, api_tokens: [k]}",
            "providers[0].api_tokens",
            "credentials",
        ),
        (
            "{name: p, type: bedrock, options: {region: us-east-1}, gcp: {service_account_json: x}}",
            "providers[0].gcp",
            "vertex",
        ),
        (
            "{name: p, type: vertex, options: {region: us-east5}}",
            "providers[0].options.project",
            "required",
        ),
        (
            "{name: p, type: vertex, options: {project: 'Bad Project', region: us-east5}}",
            "providers[0].options.project",
            "project",
        ),
        (
            "{name: p, type: vertex, options: {project: pr-oj1, region: us-east5}, gcp: {service_account_json: 'not json SECRETVALUE'}}",
            "providers[0].gcp.service_account_json",
            "service-account",
        ),
        (
            "{name: p, type: qwen, api_tokens: [k], aws: {access_key_id: A}}",
            "providers[0].aws",
            "cloud providers",
        ),
    ],
)
def test_mistakes_name_their_field(provider: str, path: str, words: str) -> None:
    found = problems(provider)
    assert any(p == path and words in m for p, m in found), found
    assert all("SECRETVALUE" not in m for _, m in found)


def test_vertex_key_missing_fields_are_named_not_shown() -> None:
    key = json.dumps({"type": "service_account", "private_key": "PRIVATE-SECRET"})
    found = problems(
        "{name: p, type: vertex, options: {project: pr-oj1, region: us-east5},"
        " gcp: {service_account_json_env: SA}}",
        {"SA": key},
    )
    ((path, msg),) = [(p, m) for p, m in found if p.startswith("providers")]
    assert path == "providers[0].gcp.service_account_json"
    assert "client_email" in msg and "token_uri" in msg and "PRIVATE-SECRET" not in msg
