"""Visitor identity and referrer domains."""

from __future__ import annotations

import pytest

from chalicelib.enrich.referrer import referrer_domain
from chalicelib.enrich.visitor import anonymous_visitor, user_visitor


def test_anonymous_visitor_is_a_keyed_hash_of_ip_and_user_agent() -> None:
    a = anonymous_visitor("key-1", "203.0.113.7", "UA/1")
    assert a == anonymous_visitor("key-1", "203.0.113.7", "UA/1")
    assert a != anonymous_visitor("key-2", "203.0.113.7", "UA/1")
    assert a != anonymous_visitor("key-1", "203.0.113.8", "UA/1")
    assert a != anonymous_visitor("key-1", "203.0.113.7", "UA/2")
    assert a.startswith("h:") and len(a) == 24
    assert "203.0.113.7" not in a and "UA/1" not in a


def test_ip_and_user_agent_cannot_be_shifted_into_each_other() -> None:
    assert anonymous_visitor("k", "1.2.3.4", "5 UA") != anonymous_visitor("k", "1.2.3.45", " UA")


def test_anonymous_visitor_needs_a_key() -> None:
    with pytest.raises(ValueError):
        anonymous_visitor("", "1.2.3.4", "UA")


def test_signed_in_visitor_is_a_keyed_hash_of_the_subject() -> None:
    a = user_visitor("key-1", "42")
    assert a == user_visitor("key-1", "42")  # the same Visitor on every device
    assert a != user_visitor("key-2", "42") and a != user_visitor("key-1", "43")
    assert a.startswith("u:") and len(a) == 24 and "42" not in a[2:]
    # Signed-in and anonymous Visitors never share an id.
    assert user_visitor("k", "1.2.3.4\x00UA")[2:] != anonymous_visitor("k", "1.2.3.4", "UA")[2:]
    with pytest.raises(ValueError):
        user_visitor("", "42")


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.Example.com/a?b=c", "example.com"),
        ("http://news.ycombinator.com", "news.ycombinator.com"),
        ("https://user:pw@host.example.org:8443/x", "host.example.org"),
        ("android-app://com.reddit.frontpage/", "com.reddit.frontpage"),
        ("ftp://example.com/", None),
        ("not a url", None),
        ("", None),
        (None, None),
        ("https://[::1", None),
    ],
)
def test_referrer_domain(url: str | None, domain: str | None) -> None:
    assert referrer_domain(url) == domain
