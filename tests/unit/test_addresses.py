"""Host names and WebSocket URLs: accepted, or refused in words that say what to type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkray_site.addresses import host_problem, ws_url_problem


@pytest.mark.parametrize("host", ["192.168.1.40", "meter-1.local", "gw", "::1", "[fe80::1]", "2001:db8::5", "a" * 63 + ".example"])
def test_host_names_and_ip_addresses_are_accepted(host):
    assert host_problem(host) is None


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("127.0.0.1:5020", "Enter the port (5020) in the Port field, and here only the host: 127.0.0.1."),
        ("meter.local:502", "Enter the port (502) in the Port field, and here only the host: meter.local."),
        ("[::1]:502", "Enter the port (502) in the Port field, and here only the host: ::1."),
        ("tcp://10.0.0.1", "without ws://, tcp:// or any other scheme"),
        ("bad host", "cannot contain spaces"),
        ("a" * 3000, "at most 253 characters; this one has 3000"),
        ("10.0.0.300", "not a valid IPv4 address"),
        ("under_score.example", "not a valid host name"),
        ("10.0.0.1/24", "without a path"),
    ],
)
def test_a_bad_host_is_refused_saying_what_to_enter(host, message):
    assert message in host_problem(host)


@pytest.mark.parametrize("url", ["ws://csms.example/ocpp", "wss://csms.example:8443/ocpp/", "ws://[::1]:9000/x", "ws://user:pw@csms/x"])
def test_websocket_urls_with_a_valid_host_are_accepted(url):
    assert ws_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "Enter a ws:// or wss:// address, e.g. wss://csms.example.com/ocpp."),
        ("http://csms.example/ocpp", "http:// is not a WebSocket address"),
        ("ws://bad host/x", "cannot contain spaces"),
        ("ws://" + "h" * 3000 + "/x", "at most 253 characters"),
        ("ws://csms.example:99999/x", "the port must be a number from 1 to 65535"),
        ("ws://csms.example/x?a=1", "without ?query or #fragment"),
    ],
)
def test_a_bad_websocket_url_is_refused_in_words(url, message):
    assert message in ws_url_problem(url)


@given(st.text(max_size=300))
def test_any_text_gives_none_or_a_sentence(text):
    for problem in (host_problem(text), ws_url_problem(text)):
        assert problem is None or (isinstance(problem, str) and problem.strip())
