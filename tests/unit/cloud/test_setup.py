"""Cloud setup from options: region and project names, endpoints, hosts."""

from __future__ import annotations

import pytest

from extproc.cloud.setup import (
    CloudConfig,
    CloudSetupError,
    _is_project,
    _is_region,
    bedrock_setup,
    vertex_host,
)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("us-east-1", True),
        ("eu-central-2", True),
        ("us-gov-west-1", True),
        ("europe-west4", True),
        ("global", True),
        ("US-east-1", False),
        ("us", False),
        ("us--east-1", False),
        ("us-east-1/../x", False),
        ("us-east-1.evil.com", False),
        ("", False),
    ],
)
def test_region_names(name: str, ok: bool) -> None:
    assert _is_region(name) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("my-project-1", True),
        ("123456789012", True),
        ("abcdef", True),
        ("abc", False),
        ("1project", False),
        ("project-", False),
        ("Project-1", False),
        ("proj/../x", False),
    ],
)
def test_project_names(name: str, ok: bool) -> None:
    assert _is_project(name) is ok


def test_hosts_from_regions_never_from_free_text() -> None:
    # A region lands in a hostname: anything but a plain region name is refused.
    with pytest.raises(CloudSetupError):
        bedrock_setup(CloudConfig({"region": "x.evil.com#"}, None, ""), "bedrock")
    up = bedrock_setup(CloudConfig({"region": "ap-southeast-2"}, None, ""), "bedrock")
    assert up.host == "bedrock-runtime.ap-southeast-2.amazonaws.com"
    china = bedrock_setup(CloudConfig({"region": "cn-northwest-1"}, None, ""), "bedrock")
    assert china.host == "bedrock-runtime.cn-northwest-1.amazonaws.com.cn"
    assert vertex_host("asia-northeast1") == "asia-northeast1-aiplatform.googleapis.com"
