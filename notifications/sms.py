"""SMS backends, chosen by settings.SMS_BACKEND like Django's EMAIL_BACKEND.

- "twilio": Twilio's Messages API through the official SDK. TWILIO_API_BASE (default https://api.twilio.com) lets
  tests and local runs point it at a stub of the API.
- "console": prints the message (the default, so a fresh checkout never texts anybody).
- "file": one JSON file per message under SMS_FILE_PATH, readable by another process (the Celery worker tests).
- "locmem": keeps messages in `sms.outbox`, like Django's locmem e-mail backend.
A dotted path to any class with `send_sms(*, to, body, reference) -> provider_id` works too.
"""

import json
import sys
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string

from .channels import PermanentSendError, TransientSendError

ALIASES = {
    "twilio": "notifications.sms.TwilioBackend",
    "console": "notifications.sms.ConsoleBackend",
    "file": "notifications.sms.FileBackend",
    "locmem": "notifications.sms.LocmemBackend",
}
TWILIO_API = "https://api.twilio.com"
# Twilio error 21610: the recipient replied STOP to our sender. Twilio refuses until they reply START.
TWILIO_UNSUBSCRIBED = 21610


@dataclass
class SmsRecord:
    to: str
    body: str
    sender: str
    provider_id: str
    reference: str = ""


outbox: list[SmsRecord] = []
_outbox_lock = threading.Lock()


def sms_backend_get():
    name = settings.SMS_BACKEND or "console"
    return import_string(ALIASES.get(name, name))()


def sms_sender() -> str:
    return settings.SMS_FROM or settings.TWILIO_FROM_NUMBER or "Billpay"


class ConsoleBackend:
    def send_sms(self, *, to: str, body: str, reference: str = "") -> str:
        provider_id = f"console-{uuid.uuid4().hex}"
        sys.stdout.write(f"SMS to {to} from {sms_sender()} [{provider_id}]\n{body}\n{'-' * 40}\n")
        sys.stdout.flush()
        return provider_id


class LocmemBackend:
    def send_sms(self, *, to: str, body: str, reference: str = "") -> str:
        provider_id = f"locmem-{uuid.uuid4().hex}"
        with _outbox_lock:
            outbox.append(
                SmsRecord(to=to, body=body, sender=sms_sender(), provider_id=provider_id, reference=reference)
            )
        return provider_id


class FileBackend:
    def send_sms(self, *, to: str, body: str, reference: str = "") -> str:
        folder = Path(settings.SMS_FILE_PATH or Path(settings.VAR_DIR) / "sms")
        folder.mkdir(parents=True, exist_ok=True)
        provider_id = f"file-{uuid.uuid4().hex}"
        record = SmsRecord(to=to, body=body, sender=sms_sender(), provider_id=provider_id, reference=reference)
        # Written under a temporary name, then renamed: a reader never sees half a message.
        tmp = folder / f".{provider_id}.tmp"
        tmp.write_text(json.dumps(asdict(record), ensure_ascii=False), encoding="utf-8")
        tmp.rename(folder / f"{provider_id}.json")
        return provider_id


def file_outbox(folder) -> list[SmsRecord]:
    return [SmsRecord(**json.loads(p.read_text(encoding="utf-8"))) for p in sorted(Path(folder).glob("*.json"))]


def _twilio_http_client(api_base: str, timeout: float):
    """Twilio's own HTTP client, with https://api.twilio.com swapped for `api_base` when that is set elsewhere.

    The SDK's `edge`/`region` options only rename *.twilio.com hosts, so a stub on 127.0.0.1 needs this instead."""
    from twilio.http.http_client import TwilioHttpClient

    class BaseUrlHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            if api_base != TWILIO_API and url.startswith(TWILIO_API):
                url = api_base + url[len(TWILIO_API) :]
            return super().request(method, url, *args, **kwargs)

    return BaseUrlHttpClient(timeout=timeout, max_retries=0)


class TwilioBackend:
    def __init__(self):
        self.account_sid = settings.TWILIO_ACCOUNT_SID
        self.auth_token = settings.TWILIO_AUTH_TOKEN
        self.from_number = settings.TWILIO_FROM_NUMBER
        self.messaging_service_sid = settings.TWILIO_MESSAGING_SERVICE_SID
        self.api_base = (settings.TWILIO_API_BASE or TWILIO_API).rstrip("/")
        self.timeout = float(settings.TWILIO_TIMEOUT)
        self.status_callback = settings.TWILIO_STATUS_CALLBACK_URL

    def client(self):
        from twilio.rest import Client

        if not (self.account_sid and self.auth_token):
            raise PermanentSendError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set")
        return Client(self.account_sid, self.auth_token, http_client=_twilio_http_client(self.api_base, self.timeout))

    def send_sms(self, *, to: str, body: str, reference: str = "") -> str:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sender = {"messaging_service_sid": self.messaging_service_sid} if self.messaging_service_sid else {}
        if not sender:
            if not self.from_number:
                raise PermanentSendError("set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
            sender = {"from_": self.from_number}
        if self.status_callback:
            sender["status_callback"] = self.status_callback
        try:
            message = self.client().messages.create(to=to, body=body, **sender)
        except TwilioRestException as exc:
            detail = f"Twilio {exc.status} code {exc.code}: {exc.msg}"
            if exc.code == TWILIO_UNSUBSCRIBED:
                from .services import sms_opt_out_record

                sms_opt_out_record(phone=to, source="twilio_21610")
                raise PermanentSendError(detail) from exc
            if exc.status == 429 or exc.status >= 500:
                raise TransientSendError(detail) from exc
            raise PermanentSendError(detail) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        except TwilioException as exc:
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        return message.sid
