"""Error tracking with Sentry, only when SENTRY_DSN is set. Nothing that identifies a card, a bank account, a secret
or the text of a message leaves the machine: `scrub_event` runs on every event before it is sent.

Card data never reaches our server (Stripe's frames take it), but a payer can still type a card number into a
free-text field, and a gateway error can echo one; IBANs come with bank transfers; tokens sit in pay links, invitation
links and headers; e-mail and SMS bodies hold names, amounts and links.
"""

import re

FILTERED = "[Filtered]"

# Keys whose values are dropped whole, wherever they appear (request data, headers, locals, extra, breadcrumbs).
_SENSITIVE_KEY = re.compile(
    r"(card|pan$|cvc|cvv|exp_|iban|bic|routing|account_number|token|secret|password|passwd|api_?key|auth|cookie|"
    r"session|csrf|signature|sig$|dsn|otp|totp|^code$|body|html|text_message|message_body|email_body|sms_text)",
    re.IGNORECASE,
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SECRET = re.compile(
    r"\b(?:sk|rk|pk|whsec|tok|seti|pi|pm|src|cus|acct|AC|SK)_[A-Za-z0-9_]{6,}\b|\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"
)
# Signed tokens in our own URLs: pay links, invitation links, paperless and autopay enrolment links.
_URL_TOKEN = re.compile(r"(/(?:b|invite|paperless|autopay)/)[^/?#\s]+")
_QUERY_TOKEN = re.compile(r"([?&](?:token|sig|signature|key|code)=)[^&#\s]+", re.IGNORECASE)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def scrub_text(text: str) -> str:
    def card(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group())
        return FILTERED if _luhn(digits) else match.group()

    text = _CARD.sub(card, text)
    text = _IBAN.sub(FILTERED, text)
    text = _SECRET.sub(FILTERED, text)
    text = _URL_TOKEN.sub(lambda m: m.group(1) + FILTERED, text)
    return _QUERY_TOKEN.sub(lambda m: m.group(1) + FILTERED, text)


def _scrub(value, depth: int = 0):
    if depth > 20:
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and _SENSITIVE_KEY.search(key) else _scrub(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        # Sentry sends headers and cookies as [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and _SENSITIVE_KEY.search(value[0]):
            return [value[0], FILTERED]
        return [_scrub(item, depth + 1) for item in value]
    return value


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """Sentry's before_send / before_breadcrumb: the event with sensitive keys dropped and sensitive text masked."""
    return _scrub(event)


def sentry_init(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=traces_sample_rate,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=scrub_event,
    )
