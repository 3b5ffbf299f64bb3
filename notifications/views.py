"""Twilio's inbound-message webhook: STOP (and its synonyms) opts a number out, START opts it back in.

Twilio signs every request (X-Twilio-Signature, HMAC-SHA1 of the full URL and the POST fields with our auth token).
The URL it signed is the public one, so it is rebuilt from SITE_URL, not from what a proxy passed on.
"""

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services import sms_opt_in_record, sms_opt_out_record

# Twilio's standard opt-out and opt-in keywords (Advanced Opt-Out defaults). Twilio answers them itself.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _signature_valid(request) -> bool:
    from twilio.request_validator import RequestValidator

    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = settings.SITE_URL + request.get_full_path()
    return RequestValidator(token).validate(url, request.POST.dict(), signature)


@csrf_exempt
@require_POST
def twilio_inbound(request):
    if not _signature_valid(request):
        return HttpResponseForbidden("bad signature")
    word = (request.POST.get("Body") or "").strip().split(maxsplit=1)
    word = word[0].upper().strip(".!") if word else ""
    sender = request.POST.get("From", "")
    if word in STOP_WORDS:
        sms_opt_out_record(phone=sender, source="sms_stop", keyword=word)
    elif word in START_WORDS:
        sms_opt_in_record(phone=sender)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
