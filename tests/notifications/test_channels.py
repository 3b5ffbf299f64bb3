"""The channels against real peers: an SMTP server (aiosmtpd) and a stub of Twilio's Messages API over HTTP."""

import base64
import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse

from notifications import sms
from notifications.channels import EmailChannel, Message, PermanentSendError, TransientSendError, channel_get
from notifications.models import Notification, SmsOptOut
from notifications.planner import reminders_plan
from notifications.render import notification_render, pay_url_for
from notifications.services import notification_send, notifications_sweep

from .conftest import DUE, at, issued_bill


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield inbox
    controller.stop()


@pytest.mark.django_db
def test_a_reminder_reaches_a_real_smtp_server_with_html_and_text(smtp_server, account, biller, settings):
    settings.DEFAULT_FROM_EMAIL = "Billpay <billing@billpay.example>"
    biller.brand_color = "#ffcc00"
    biller.save()
    bill = issued_bill(account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    [pk] = notifications_sweep(now=at(DUE, 9), enqueue=False).claimed
    assert notification_send(notification_id=pk, now=at(DUE, 9)) == "sent"

    [(mail_from, rcpt_tos, raw)] = smtp_server.messages
    assert mail_from == "billing@billpay.example" and rcpt_tos == [account.email]
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"] == "Riverside Water <billing@billpay.example>"  # biller-branded, our address
    assert parsed["Reply-To"] == biller.support_email
    assert parsed["Subject"] == "Your bill of $50.00 is due today"
    assert parsed["Message-ID"] == Notification.objects.get(pk=pk).provider_id
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    link = pay_url_for(bill)
    assert link.startswith("https://pay.riverside.example/pay/b/")
    assert link in text and f'href="{link}"' in html
    assert "Bill N-" in text or bill.number in text
    assert "background:#ffcc00;color:#000000" in html  # brand colour, dark text on a light brand
    assert 'lang="en" dir="ltr"' in html


@pytest.mark.django_db
def test_the_e_bill_carries_the_pdf(smtp_server, account, settings):
    settings.NOTIFICATIONS_ATTACH_BILL_PDF = True
    issued_bill(account, issued=DUE)
    reminders_plan(today=DUE, now=at(DUE, 6))
    row = Notification.objects.get(kind="bill_issued")
    notifications_sweep(now=at(DUE, 6), enqueue=False)
    assert notification_send(notification_id=row.pk, now=at(DUE, 6)) == "sent"
    parsed = email.message_from_bytes(smtp_server.messages[0][2], policy=email.policy.default)
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content()[:5] == b"%PDF-"
    assert "attached as a PDF" in parsed.get_body(("plain",)).get_content()


def test_an_unreachable_smtp_server_is_a_transient_error(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    with pytest.raises(TransientSendError):
        EmailChannel().send(Message(to="a@example.com", subject="s", text="t"))


def test_a_refused_recipient_is_permanent(settings):
    class Refusing:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "550 5.1.1 no such user"

    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", controller.port, 5
        with pytest.raises(PermanentSendError):
            EmailChannel().send(Message(to="nobody@example.com", subject="s", text="t"))
    finally:
        controller.stop()


# --- SMS -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_file_backend_writes_one_readable_file_per_message(settings, tmp_path, texting_account):
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path)
    bill = issued_bill(texting_account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    for pk in notifications_sweep(now=at(DUE, 9), enqueue=False).claimed:
        notification_send(notification_id=pk, now=at(DUE, 9))
    [record] = sms.file_outbox(tmp_path)
    assert record.to == "+15550100123"
    assert record.body == f"Riverside Water: $50.00 is due today. Pay: {pay_url_for(bill)}"
    assert Notification.objects.get(channel="sms", status="sent").provider_id == record.provider_id


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "es", "ar", "fa"])
def test_every_kind_renders_on_every_channel_in_every_language(texting_account, language):
    from billing.payments.offline import payment_record_offline

    texting_account.language = language
    texting_account.save()
    bill = issued_bill(texting_account)
    payment = payment_record_offline(account=texting_account, amount=1000, method="cash")
    link = pay_url_for(bill)
    for kind, _label in Notification._meta.get_field("kind").choices:
        for channel in ("email", "sms"):
            row = Notification(
                dedupe_key=f"t:{kind}:{channel}", biller=bill.biller, account=texting_account, bill=bill,
                payment=payment if kind.startswith("payment") else None, kind=kind, channel=channel, step=3,
                send_at=at(DUE),
            )  # fmt: skip
            message = notification_render(row, to="x", now=at(DUE))
            # A refund e-mail never asks for payment (issue 10): no pay link in it; every other notice carries it.
            asks_payment = not (kind == "refund_issued" and channel == "email")
            assert (link in message.text) is asks_payment, (kind, channel)
            assert "{%" not in message.text and "{{" not in message.text
            if channel == "sms":
                assert len(message.text) <= 160 and "\n" not in message.text, message.text
            else:
                assert message.subject and "\n" not in message.subject
                assert (f'href="{link}"' in message.html) is asks_payment
                assert f'lang="{language}"' in message.html
                assert ('dir="rtl"' in message.html) == (language in ("ar", "fa"))


def test_a_long_sms_is_shortened_but_keeps_the_link():
    from notifications.render import sms_compose

    link = "https://pay.example/pay/b/" + "x" * 60
    text = sms_compose("A very long biller name that goes on and on " * 5, link)
    assert len(text) == 160 and text.endswith(" " + link) and "…" in text


class TwilioStub(BaseHTTPRequestHandler):
    """Plays POST /2010-04-01/Accounts/<sid>/Messages.json the way Twilio answers it."""

    requests: list = []
    reply_status = 201
    reply_body: dict = {}

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "form": parse_qs(body)}
        )
        payload = self.reply_body or {
            "sid": "SM" + "a" * 32, "status": "queued", "to": parse_qs(body)["To"][0], "body": parse_qs(body)["Body"][0],
        }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(self.reply_status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def twilio_stub(settings):
    TwilioStub.requests, TwilioStub.reply_status, TwilioStub.reply_body = [], 201, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), TwilioStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_API_BASE = f"http://127.0.0.1:{server.server_port}"
    settings.TWILIO_ACCOUNT_SID = "AC" + "1" * 32
    settings.TWILIO_AUTH_TOKEN = "test-auth-token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    yield TwilioStub
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_the_twilio_backend_posts_to_the_messages_api(twilio_stub, texting_account):
    bill = issued_bill(texting_account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    row = Notification.objects.get(channel="sms", step=0)
    notifications_sweep(now=at(DUE, 9), enqueue=False)
    assert notification_send(notification_id=row.pk, now=at(DUE, 9)) == "sent"

    [request] = twilio_stub.requests
    sid = "AC" + "1" * 32
    assert request["path"] == f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert request["auth"] == "Basic " + base64.b64encode(f"{sid}:test-auth-token".encode()).decode()
    assert request["form"]["To"] == ["+15550100123"]
    assert request["form"]["From"] == ["+15005550006"]
    assert request["form"]["Body"] == [f"Riverside Water: $50.00 is due today. Pay: {pay_url_for(bill)}"]
    row.refresh_from_db()
    assert row.provider_id == "SM" + "a" * 32


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "code", "error"), [(500, 20500, TransientSendError), (429, 20429, TransientSendError),
                                  (400, 21211, PermanentSendError), (400, 21610, PermanentSendError)],
)  # fmt: skip
def test_twilio_errors_are_classified(twilio_stub, status, code, error):
    twilio_stub.reply_status = status
    twilio_stub.reply_body = {"code": code, "message": "nope", "status": status}
    with pytest.raises(error):
        channel_get("sms").send(Message(to="+15550100123", text="hi"))
    # 21610: the number said STOP to Twilio directly; we remember it too.
    assert SmsOptOut.objects.filter(phone="+15550100123").exists() == (code == 21610)


def test_twilio_unreachable_is_transient(settings):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_API_BASE = f"http://127.0.0.1:{free_port()}"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER = "AC1", "tok", "+1500"
    with pytest.raises(TransientSendError):
        channel_get("sms").send(Message(to="+15550100123", text="hi"))


def _signed_post(client, settings, form: dict, *, token="test-auth-token"):
    from twilio.request_validator import RequestValidator

    path = reverse("notifications:twilio_inbound")
    signature = RequestValidator(token).compute_signature(settings.SITE_URL + path, form)
    return client.post(path, form, HTTP_X_TWILIO_SIGNATURE=signature)


@pytest.mark.django_db
def test_stop_and_start_replies_through_the_signed_webhook(client, settings, texting_account):
    settings.TWILIO_AUTH_TOKEN = "test-auth-token"
    form = {"From": "+15550100123", "To": "+15005550006", "Body": "Stop", "MessageSid": "SM1"}
    response = _signed_post(client, settings, form)
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert SmsOptOut.objects.get().phone == "+15550100123"
    # The opted-out number is not planned for.
    issued_bill(texting_account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    assert not Notification.objects.filter(channel="sms").exists()
    _signed_post(client, settings, {**form, "Body": "START", "MessageSid": "SM2"})
    assert not SmsOptOut.objects.exists()


@pytest.mark.django_db
def test_an_unsigned_or_forged_webhook_is_refused(client, settings):
    settings.TWILIO_AUTH_TOKEN = "test-auth-token"
    form = {"From": "+15550100123", "Body": "STOP"}
    assert client.post(reverse("notifications:twilio_inbound"), form).status_code == 403
    assert _signed_post(client, settings, form, token="someone-elses-token").status_code == 403
    assert not SmsOptOut.objects.exists()


def test_every_channel_says_where_an_accounts_address_is():
    """The receipts of a batch are read only for payments with an address on some channel (payment_addressed_q):
    a channel sent on without its address field there would silently get no receipts."""
    from notifications.channels import channel_names
    from notifications.preferences import ACCOUNT_ADDRESS_FIELDS

    assert set(channel_names()) <= set(ACCOUNT_ADDRESS_FIELDS)
