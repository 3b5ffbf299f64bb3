"""The payer-facing portal in Arabic, Persian and Spanish.

Arabic and Persian speakers are first-class users (PRODUCT.md): the pages they see, the messages a declined card
produces and the e-mails they get must be in their language, and right-to-left for Arabic and Persian.

The last tests read locale/<lang>/LC_MESSAGES/django.po with a small standard-library parser and fail when a string a
payer can see has no translation, is marked fuzzy, loses a placeholder, or when the committed .mo (what ships: a
fresh machine may have no gettext tools) is out of date with its .po. When you add or change a payer-facing string:

    python manage.py makemessages -l ar -l fa -l es --ignore=.venv --ignore=var --ignore=tests --ignore=bench
    # translate the new entries in locale/{ar,fa,es}/LC_MESSAGES/django.po
    python manage.py compilemessages --ignore=.venv
"""

import gettext
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

LANGUAGES = ["ar", "fa", "es"]
RTL = {"ar", "fa"}
LOCALE_DIR = Path(settings.BASE_DIR) / "locale"

# Expected translations, one distinctive phrase per check.
PAY_A_BILL = {"ar": "ادفع فاتورة", "fa": "پرداخت قبض", "es": "Pagar una factura"}
FIND_MY_ACCOUNT = {"ar": "ابحث عن حسابي", "fa": "پیدا کردن حساب من", "es": "Buscar mi cuenta"}
ACCOUNT_NUMBER = {"ar": "رقم الحساب", "fa": "شماره حساب", "es": "Número de cuenta"}
INSUFFICIENT_FUNDS = {
    "ar": "رصيد بطاقتك غير كافٍ",
    "fa": "موجودی کارت شما کافی نیست",
    "es": "Su tarjeta no tiene fondos suficientes",
}
EXPIRED_CARD = {
    "ar": "انتهت صلاحية بطاقتك",
    "fa": "کارت شما منقضی شده است",
    "es": "Su tarjeta ha caducado",
}
REFUNDED = {"ar": "استرددنا لك", "fa": "بازپرداخت کردیم", "es": "Le hemos reembolsado"}
PAYMENT_RECEIVED = {"ar": "تم استلام الدفعة", "fa": "پرداخت دریافت شد", "es": "Pago recibido"}


@pytest.fixture(autouse=True)
def _no_language_leaks_into_later_tests():
    """LocaleMiddleware activates the request's language for the whole thread and nothing resets it after the
    response. Without this, the last Accept-Language request here would leave Spanish active for the tests that run
    after this file (pytest-django runs the non-database tests last) and their English assertions would fail."""
    yield
    translation.deactivate()


# --- Pages ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_home_page_is_translated_and_has_the_right_direction(client, biller, language):
    html = client.get(reverse("billing:home"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    direction = "rtl" if language in RTL else "ltr"
    assert f'<html lang="{language}" dir="{direction}">' in html
    assert PAY_A_BILL[language] in html
    assert ">Pay a bill<" not in html


@pytest.mark.parametrize("language", LANGUAGES)
def test_lookup_page_labels_are_translated(client, biller, language):
    html = client.get(reverse("billing:pay"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert ACCOUNT_NUMBER[language] in html
    assert FIND_MY_ACCOUNT[language] in html
    assert "Find my account" not in html
    assert "Account number" not in html


# --- Decline messages ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_decline_messages_are_translated(language):
    from billing.payments.gateway import decline_classify

    with translation.override(language):
        assert INSUFFICIENT_FUNDS[language] in str(
            decline_classify("card_declined", "insufficient_funds").payer_message
        )
        assert EXPIRED_CARD[language] in str(decline_classify("expired_card").payer_message)
        generic = str(decline_classify("card_declined", "some_code_nobody_knows").payer_message)
    assert generic and "Your card was declined" not in generic


# --- E-mails -------------------------------------------------------------------------------------------------------


def _email_context():
    biller = SimpleNamespace(name="Riverside Water", support_email="help@example.com", support_phone="+1 555 0100")
    account = SimpleNamespace(holder_name="Layla Haddad", account_number="100-200")
    payment = SimpleNamespace(confirmation_number="BP-7Q2X", method="card")
    return {
        "biller": biller,
        "account": account,
        "payment": payment,
        "refund": SimpleNamespace(reason="Paid twice"),
        "amount": "$12.00",
        "payment_amount": "$42.50",
        "pay_url": "https://pay.example.com/pay/b/x/",
        "bill": None,
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_refund_notice_email_is_translated(language):
    context = {**_email_context(), "refund_amount": "$12.00"}
    with translation.override("en"):
        english_subject = render_to_string("notifications/refund_issued/subject.txt", context)
    with translation.override(language):
        subject = render_to_string("notifications/refund_issued/subject.txt", context)
        body = render_to_string("notifications/refund_issued/email.txt", context)
    assert "$12.00" in subject and subject != english_subject
    assert REFUNDED[language] in body
    assert "$12.00" in body and "BP-7Q2X" in body and "Paid twice" in body
    assert "We have refunded" not in body
    assert "Hello" not in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_payment_received_notice_is_translated(language):
    context = _email_context()
    with translation.override(language):
        subject = render_to_string("notifications/payment_received/subject.txt", context)
        body = render_to_string("notifications/payment_received/email.txt", context)
    assert PAYMENT_RECEIVED[language] in subject and "$42.50" in subject
    assert "$42.50" in body and "BP-7Q2X" in body
    assert "Thank you" not in body


# --- The catalogues ------------------------------------------------------------------------------------------------

# Where the strings a payer sees come from. Staff-only code (billing/admin/, billing/bills/imports.py, the admin
# templates, model field names) is staff-facing: staff use English, so those entries may stay untranslated.
PAYER_TEMPLATES = ("templates/", "notifications/templates/")
STAFF_TEMPLATES = ("templates/admin/",)
# The .po references still name the pre-issue-9 paths (billing/lookup.py, …) until makemessages runs again; both are
# listed.
PAYER_MODULES = {
    # billing's payer-facing modules (the old forms, lookup, gateway, payments, receipts, enrollments modules' homes)
    "billing/money.py",
    "billing/views.py",
    "billing/payments/forms.py",
    "billing/payments/lookup.py",
    "billing/payments/gateway.py",
    "billing/payments/stripe_gateway.py",
    "billing/payments/online.py",
    "billing/payments/core.py",
    "billing/payments/attempts.py",
    "billing/payments/allocations.py",
    "billing/payments/refunds.py",
    "billing/payments/receipts.py",
    "billing/payments/mandates.py",
    "billing/payments/bank_debits.py",
    "billing/payments/bank_forms.py",
    "billing/methods/bank.py",
    "billing/bills/documents.py",  # the e-bill's usage chart and QR code
    "billing/methods/services.py",
    "billing/enrolment/forms.py",
    "billing/enrolment/paperless.py",
    "billing/enrolment/guest.py",
    "billing/autopay/enrolment.py",
    "billing/autopay/selectors.py",
    "billing/plans/schedule.py",
    "billing/plans/selectors.py",
    "billing/plans/services.py",
    "billing/plans/setup.py",
    "config/settings/base.py",  # the language names in the language switch
}


def payer_facing(path: str) -> bool:
    if path.startswith(STAFF_TEMPLATES):
        return False
    if path.startswith(PAYER_TEMPLATES) or path in PAYER_MODULES:
        return True
    # accounts/insight.py feeds the staff insight page (billing/admin/insight.py), not a payer page.
    return path.startswith("accounts/") and path not in ("accounts/admin.py", "accounts/insight.py")


def _unquote(token: str) -> str:
    body = token.strip()[1:-1]
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), body)


def parse_po(path: Path) -> list[dict]:
    """The live entries of a .po file: msgctxt, msgid, msgid_plural, msgstr {index: text}, flags, references."""
    entries = []

    def fresh():
        return {"refs": [], "flags": set(), "msgctxt": None, "msgid": None, "msgid_plural": None, "msgstr": {}}

    entry, field = fresh(), None
    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if not line:
            if entry["msgid"] is not None:
                entries.append(entry)
            entry, field = fresh(), None
        elif line.startswith("#~"):
            continue  # obsolete
        elif line.startswith("#:"):
            entry["refs"] += [ref.rsplit(":", 1)[0] for ref in line[2:].split()]
        elif line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            if field[0] == "msgstr":
                entry["msgstr"][field[1]] += _unquote(line)
            else:
                entry[field[0]] += _unquote(line)
        else:
            match = re.match(r'(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$', line)
            assert match, f"{path}: cannot read {raw!r}"
            key, index, value = match.groups()
            if key == "msgstr":
                field = ("msgstr", int(index or 0))
                entry["msgstr"][field[1]] = _unquote(value)
            else:
                field = (key, None)
                entry[key] = _unquote(value)
    return entries


def _po(language):
    return LOCALE_DIR / language / "LC_MESSAGES" / "django.po"


def _label(entry):
    return f"{entry['msgid']!r} ({', '.join(sorted(set(entry['refs'])))})"


def _placeholders(text):
    return set(re.findall(r"%\((\w+)\)", text))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_payer_facing_string_is_translated(language):
    entries = parse_po(_po(language))
    header = entries[0]
    assert header["msgid"] == "" and "fuzzy" not in header["flags"]
    nplurals = int(re.search(r"nplurals=(\d+)", header["msgstr"][0]).group(1))
    payer = [e for e in entries[1:] if any(payer_facing(ref) for ref in e["refs"])]
    assert len(payer) > 300, "the payer-facing strings were not found: did the references change?"

    untranslated = [_label(e) for e in payer if not all(e["msgstr"].values())]
    assert untranslated == [], f"{len(untranslated)} untranslated payer-facing {language} entries:\n" + "\n".join(
        untranslated
    )
    fuzzy = [_label(e) for e in entries[1:] if "fuzzy" in e["flags"]]
    assert fuzzy == [], f"fuzzy {language} entries (check and unmark them):\n" + "\n".join(fuzzy)
    wrong_plurals = [_label(e) for e in payer if e["msgid_plural"] is not None and len(e["msgstr"]) != nplurals]
    assert wrong_plurals == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language):
    problems = []
    for entry in parse_po(_po(language))[1:]:
        source = _placeholders(entry["msgid"]) | _placeholders(entry["msgid_plural"] or "")
        for index, text in entry["msgstr"].items():
            if not text:
                continue
            found = _placeholders(text)
            # A singular form may leave out the count ("due tomorrow"), but never invent or drop a name otherwise.
            expected = source if entry["msgid_plural"] is None else None
            if found - source or (expected is not None and found != expected):
                problems.append(f"{_label(entry)}[{index}]: {sorted(found)} vs {sorted(source)}")
    assert problems == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_committed_mo_matches_the_po(language):
    """The .mo is what Django reads. A .po edited without compilemessages would silently ship the old text."""
    mo_path = _po(language).with_suffix(".mo")
    assert mo_path.exists(), f"run compilemessages: {mo_path} is missing"
    with mo_path.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)._catalog
    stale = []
    for entry in parse_po(_po(language))[1:]:
        if not all(entry["msgstr"].values()):
            continue
        key = entry["msgid"] if entry["msgctxt"] is None else f"{entry['msgctxt']}\x04{entry['msgid']}"
        for index, text in entry["msgstr"].items():
            compiled = catalog.get(key if entry["msgid_plural"] is None else (key, index))
            if compiled != text:
                stale.append(_label(entry))
                break
    assert stale == [], "the .mo is out of date; run compilemessages:\n" + "\n".join(stale)
