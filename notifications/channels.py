"""Delivery channels. Each takes a rendered `Message` and hands it to a provider, returning the provider's id.

A channel raises `TransientSendError` when trying again later may work (a timeout, a 5xx, rate limiting) and
`PermanentSendError` when it will not (a refused address, an unsubscribed number). The outbox retries only the first.

Adding a channel (WhatsApp, push) means: a class with `name` and `send()`, `@register` on it, a `ChannelName` choice, a
rendering in render.py and its default in preferences.py.
"""

from dataclasses import dataclass, field
from email.utils import formataddr, make_msgid, parseaddr
from typing import Protocol

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from .models import ChannelName


class SendError(Exception):
    pass


class TransientSendError(SendError):
    """Worth another try later."""


class PermanentSendError(SendError):
    """Will fail the same way every time; the notification stops as failed."""


@dataclass
class Message:
    """A notice rendered for one channel and one recipient."""

    to: str
    text: str
    subject: str = ""
    html: str = ""
    sender_name: str = ""
    reply_to: str = ""
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)
    reference: str = ""  # our dedupe key, for provider-side logs and headers


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> str: ...


_REGISTRY: dict[str, type] = {}


def register(cls):
    _REGISTRY[cls.name] = cls
    return cls


def channel_get(name: str) -> Channel:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise PermanentSendError(f"no channel named {name!r}") from None


def channel_names() -> list[str]:
    return list(_REGISTRY)


@register
class EmailChannel:
    """Through Django's e-mail backend, so SMTP, the console or django-anymail (via EMAIL_BACKEND) all work."""

    name = ChannelName.EMAIL

    def send(self, message: Message) -> str:
        from_name, from_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
        # The biller's name on our sending address: their brand, our SPF/DKIM.
        from_email = formataddr((message.sender_name or from_name, from_address))
        message_id = make_msgid(domain=from_address.rpartition("@")[2] or None)
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=from_email,
            to=[message.to],
            reply_to=[message.reply_to] if message.reply_to else None,
            headers={"Message-ID": message_id, "X-Billpay-Notification": message.reference},
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        for filename, content, mimetype in message.attachments:
            email.attach(filename, content, mimetype)
        try:
            sent = email.send(fail_silently=False)
        except (ConnectionError, TimeoutError) as exc:  # includes smtplib's socket-level failures
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise _classify_email_error(exc) from exc
        if not sent:
            raise TransientSendError("the e-mail backend accepted nothing")
        # django-anymail reports the ESP's id; plain SMTP has only our Message-ID.
        status = getattr(email, "anymail_status", None)
        return (getattr(status, "message_id", None) or message_id)[:255]


def _classify_email_error(exc: Exception) -> SendError:
    import smtplib

    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentSendError(f"recipient refused: {exc.recipients}")
        return TransientSendError(f"recipient deferred: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = PermanentSendError if 500 <= exc.smtp_code < 600 else TransientSendError
        return kind(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}")
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return TransientSendError(f"{type(exc).__name__}: {exc}")
    anymail_error = type(exc).__name__
    if anymail_error == "AnymailRecipientsRefused":
        return PermanentSendError(str(exc))
    return TransientSendError(f"{anymail_error}: {exc}")


@register
class SmsChannel:
    """Text messages through the backend named by settings.SMS_BACKEND (see sms.py)."""

    name = ChannelName.SMS

    def send(self, message: Message) -> str:
        from .sms import sms_backend_get

        return sms_backend_get().send_sms(to=message.to, body=message.text, reference=message.reference)
