"""What Sentry would receive: card numbers, IBANs, tokens and message bodies are gone, the rest is still useful."""

import json

import sentry_sdk
from sentry_sdk.transport import Transport

from config.sentry import FILTERED, scrub_event, scrub_text


def test_card_numbers_are_masked_in_any_text_but_other_numbers_stay():
    text = "declined 4242 4242 4242 4242 and 4000-0000-0000-0002 for bill 2024-000123, amount 125000"
    assert scrub_text(text) == f"declined {FILTERED} and {FILTERED} for bill 2024-000123, amount 125000"


def test_ibans_and_secrets_are_masked():
    text = "refund to DE89 3704 0044 0532 0130 00 with sk_live_abcdef123456 and whsec_0123456789, Bearer abc.def"
    scrubbed = scrub_text(text)
    assert (
        "DE89" not in scrubbed and "sk_live" not in scrubbed and "whsec_" not in scrubbed and "abc.def" not in scrubbed
    )
    assert scrubbed.startswith("refund to ")


def test_signed_links_lose_their_token():
    assert scrub_text("GET /pay/b/eyJhY2NvdW50Ijo0Mn0:1sX:abc/ failed") == f"GET /pay/b/{FILTERED}/ failed"
    assert scrub_text("/me/invite/Zm9vYmFy/?next=1") == f"/me/invite/{FILTERED}/?next=1"
    assert scrub_text("/pay/receipt/R-1/pdf/?sig=abc123&x=1") == f"/pay/receipt/R-1/pdf/?sig={FILTERED}&x=1"


def test_a_whole_event_is_scrubbed_by_key_and_by_value():
    event = {
        "message": "charge failed for card 4242424242424242",
        "request": {
            "url": "https://pay.example.com/pay/b/secret-token/",
            "headers": [["Authorization", "Bearer xyz"], ["User-Agent", "Mozilla"]],
            "cookies": {"sessionid": "s3cr3t"},
            "data": {"iban": "GB82WEST12345698765432", "amount": "12.00"},
        },
        "extra": {"email_body": "Dear Ana, your bill ...", "html_message": "<p>Dear Ana</p>", "bill": 42},
        "exception": {"values": [{"type": "GatewayError", "value": "pm_1Nabcdefgh declined"}]},
    }
    scrubbed = scrub_event(event)
    dumped = json.dumps(scrubbed)
    for secret in ("4242424242424242", "secret-token", "xyz", "s3cr3t", "GB82", "Dear Ana", "pm_1Nabcdefgh"):
        assert secret not in dumped, secret
    assert scrubbed["request"]["headers"][1] == ["User-Agent", "Mozilla"]
    assert scrubbed["request"]["data"]["amount"] == "12.00"
    assert scrubbed["extra"]["bill"] == 42
    assert scrubbed["exception"]["values"][0]["type"] == "GatewayError"


class RecordingTransport(Transport):
    """A fake of Sentry's transport: keeps the envelopes instead of sending them."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)


def test_the_sdk_sends_only_the_scrubbed_event():
    transport = RecordingTransport()
    client = sentry_sdk.Client(dsn="https://key@sentry.invalid/1", transport=transport, before_send=scrub_event)
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        try:
            raise ValueError("card 4242 4242 4242 4242 was declined, IBAN NL91ABNA0417164300")
        except ValueError:
            sentry_sdk.capture_exception()
    client.flush()
    sent = b"".join(item.get_bytes() for envelope in transport.envelopes for item in envelope.items)
    assert b"ValueError" in sent
    assert b"4242" not in sent and b"NL91ABNA" not in sent
