"""The transport policy against a real local server (the emulator base with scripted replies)."""

import json
import time

import pytest

from stream_assets.core.emulator import Emulator, Reply
from stream_assets.core.errors import ApiPayloadError, ApiRequestError, ApiThrottledError, ResponseTooLargeError
from stream_assets.core.http import HttpApi, TransportPolicy, strict_json
from stream_assets.core.secrets import register_secrets, scrub, scrubbed_excerpt, url_without_query


class Echo(Emulator):
    def handle(self, request):
        return Reply.json({"ok": True})


@pytest.fixture
def server():
    with Echo() as emulator:
        yield emulator


def client_for(server, **policy) -> tuple[HttpApi, list[float]]:
    slept = []
    api = HttpApi(server.root_url, policy=TransportPolicy(**policy), sleep=slept.append)
    api.api_name = "Test"
    return api, slept


def test_retry_after_is_honoured_up_to_the_cap(server):
    api, slept = client_for(server, retry_after_cap=60)
    server.fail_next(Reply.json({"message": "slow down"}, status=429, headers={"Retry-After": "7"}), times=2)
    response = api.send("GET", "thing", f"{api.base_url}/thing")
    assert response.status_code == 200 and slept == [7.0, 7.0] and api.requests_made == 3


def test_retry_after_above_the_cap_is_a_transient_typed_error_at_once(server):
    api, slept = client_for(server, retry_after_cap=60)
    server.fail_next(Reply.json({"message": "come back tomorrow"}, status=503, headers={"Retry-After": "86400"}))
    started = time.monotonic()
    with pytest.raises(ApiThrottledError, match="86400 s, more than the 60 s") as caught:
        api.send("GET", "thing", f"{api.base_url}/thing")
    assert caught.value.transient and caught.value.retry_after == 86400 and slept == []
    assert time.monotonic() - started < 2


def test_a_body_above_the_size_limit_is_refused(server):
    api, _ = client_for(server, max_response_bytes=1000)
    server.fail_next(Reply.json({"data": "x" * 5000}))
    with pytest.raises(ResponseTooLargeError, match="1,000-byte limit") as caught:
        api.send("GET", "thing", f"{api.base_url}/thing")
    assert not caught.value.transient


@pytest.mark.parametrize("text", ['{"v": NaN}', '{"v": Infinity}', '{"v": -Infinity}', '{"v": 1e999}'])
def test_json_is_strict_about_numbers(text):
    with pytest.raises(ValueError):
        strict_json(text.encode())
    assert strict_json(b'{"v": 1e300, "w": "\xc3\xa9"}') == {"v": 1e300, "w": "é"}


def test_invalid_utf8_and_html_are_payload_errors(server):
    api, _ = client_for(server)
    server.fail_next(Reply(200, b'{"v": "\xff"}', "application/json"))
    with pytest.raises(ApiPayloadError, match="not valid UTF-8"):
        api.decode_json("thing", api.send("GET", "thing", f"{api.base_url}/thing"))
    server.fail_next(Reply(200, json.dumps({"v": "é"}, ensure_ascii=False).encode(), "text/plain"))
    assert api.decode_json("thing", api.send("GET", "thing", f"{api.base_url}/thing")) == {"v": "é"}


@pytest.mark.parametrize("base", ["127.0.0.1:8080", "api.example.com", "ftp://x.org", "http://", "https://h/?sig=1"])
def test_a_base_url_without_scheme_or_host_is_a_typed_configuration_error(base):
    with pytest.raises(ApiRequestError, match="base URL") as caught:
        HttpApi(base)
    assert caught.value.endpoint == "configuration" and not caught.value.transient


def test_secrets_and_signatures_are_scrubbed_from_any_text():
    register_secrets("s3cr3t-value/with+chars")
    text = "key s3cr3t-value/with+chars, encoded s3cr3t-value%2Fwith%2Bchars, url /x?sig=abcdef0123&signature=ffee"
    cleaned = scrub(text)
    assert "s3cr3t" not in cleaned and "abcdef0123" not in cleaned and "ffee" not in cleaned
    assert url_without_query("https://user:pw@api.x.net/api/item/view?signature=abc") == "https://api.x.net/api/item/view"



def test_an_excerpt_cut_through_a_secret_masks_all_of_it(server):
    secret = "excerpt-secret-0123456789-0123456789-0123456789"  # longer than the 40 characters a JSON error quotes
    register_secrets(secret)
    text = f"prefix {secret} suffix Bearer tok3n-abcdef x"
    for cut in range(0, 50, 3):
        for start, end in [(0, 7 + cut), (7 + cut, 100), (cut, cut + 5)]:
            shown = scrubbed_excerpt(text.encode(), start, end)
            assert not any(secret[i:i + 6] in shown for i in range(len(secret) - 5)), (start, end, shown)
            assert "abcdef" not in shown
    api, _ = client_for(server)
    server.fail_next(Reply(200, f"error: {secret} refused".encode(), "application/json"))
    with pytest.raises(ApiPayloadError, match=r"error: \*\*\*") as caught:
        api.decode_json("thing", api.send("GET", "thing", f"{api.base_url}/thing"))
    assert "excerpt-s" not in str(caught.value)
