"""Anthropic admin keys: the format check before any request, and the one-request validation
against the simulator (401: not an admin key or revoked; 403: no permission)."""

from __future__ import annotations

import pytest

from stax_pipeline.errors import CredentialError, UsageError
from stax_pipeline.sources.anthropic_admin.key_format import check_admin_key_format
from stax_pipeline.sources.anthropic_admin.validate import validate_admin_key

GOOD_KEY = "sk-ant-admin01-test-1b2c3d4e5f60718293a4"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("sk-ant-api03-AbCdEf0123456789-xyz", "API key for inference"),
        ("sk-admin-0123456789abcdef", "Anthropic admin keys start with sk-ant-admin01-"),
        ("sk-ant-admin01-", "Anthropic admin keys start with sk-ant-admin01-"),
        ("", "no key given"),
        ("'sk-ant-admin01-quoted-0123456789'", "in quotes"),
        ("sk-ant-admin01-with space", "spaces"),
    ],
)
def test_a_key_that_is_not_an_admin_key_is_refused_before_any_request(simulator, key, says):
    with pytest.raises(UsageError) as refused:
        validate_admin_key(simulator.base_url, key)
    message = str(refused.value)
    assert says in message and message.endswith("Nothing was stored.") and "\n" not in message
    if key.startswith("sk-ant-api"):
        assert "organization admin" in message and "admin keys page" in message
    assert key[15:] not in message or not key[15:]  # never echoes the key
    assert simulator.requests == []  # nothing was sent


def test_a_good_admin_key_is_checked_with_one_cost_report_request(stax_home, simulator):
    check = validate_admin_key(simulator.base_url, GOOD_KEY)
    assert check.simulator is True
    # checked by the cost report, then asked whose it is
    [(check_path, params), (me_path, _)] = simulator.requests
    assert check_path == "/v1/organizations/cost_report" and params["bucket_width"] == ["1d"]
    assert me_path == "/v1/organizations/me"
    assert check.organization_id == simulator.anthropic_org_for_key(GOOD_KEY).org_id
    check_admin_key_format(GOOD_KEY)  # and the format check alone passes it


@pytest.mark.parametrize(
    ("key", "status_words"),
    [
        ("sk-ant-admin01-test-revoked-00aa11bb22cc", "HTTP 401"),
        ("sk-ant-admin01-test-nopermission-33dd44ee", "403"),
    ],
)
def test_401_and_403_say_what_to_do_in_one_line(stax_home, simulator, key, status_words):
    with pytest.raises(CredentialError) as refused:
        validate_admin_key(simulator.base_url, key)
    message = str(refused.value)
    assert status_words in message and message.endswith("Nothing was stored.") and "\n" not in message
    if "401" in status_words:
        assert "not an admin key, or it was revoked" in message
    else:
        assert "lacks permission" in message
    assert key not in message
    assert len(simulator.requests) == 1  # one request, no retries of a final answer, no lookup


def test_a_key_revoked_at_runtime_is_refused(stax_home, simulator):
    validate_admin_key(simulator.base_url, GOOD_KEY)
    simulator.revoke(GOOD_KEY)
    with pytest.raises(CredentialError, match="HTTP 401"):
        validate_admin_key(simulator.base_url, GOOD_KEY)
