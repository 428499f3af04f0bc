"""Secrets out of every URL the package shows (base_url, Redis, PostgreSQL, proxies)."""

from __future__ import annotations

import pytest

from vortext_async._redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw1@h:1/0", "redis://:***@h:1/0"),
        ("rediss://u:pw1@h/2", "rediss://u:***@h/2"),
        ("redis://u:p@ss1@h/0", "redis://u:***@h/0"),  # an @ inside the password
        ("redis://h:1/0?password=pw1&db=0", "redis://h:1/0?password=***&db=0"),
        (
            "postgresql://h/db?password=pw1&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("http://proxy:3128?auth_token=pw1", "http://proxy:3128?auth_token=***"),
        ("user:pw1@host", "***@host"),  # no //: parsed as scheme "user" and path "pw1@host"
        ("//u:pw1@host", "//u:***@host"),
    ],
)
def test_passwords_and_secret_parameters_become_stars(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    ["redis://h:6379", "postgresql://u@h/db?sslmode=require&connect_timeout=5", "http://h/a@b"],
)
def test_a_url_without_secrets_is_shown_as_it_is(url: str) -> None:
    assert redact_url(url) == url


def test_a_url_that_cannot_be_parsed_is_not_shown_at_all() -> None:
    assert "pw1" not in redact_url("http://u:pw1@[::1")
