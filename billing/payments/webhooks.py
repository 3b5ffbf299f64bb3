"""The gateway's webhook endpoint. It parses and stores the delivery, then calls one service.

Order (dj-stripe's): verify the signature, store the raw event under its unique id, then process it inside `atomic`.
A redelivery of an event already processed answers 200 at once. One stored but not processed (a crash, or the
gateway was unreachable while processing) is processed again, so a retry from Stripe is never swallowed.
"""

import logging

from django.db import IntegrityError, transaction
from django.http import HttpResponse, HttpResponseBadRequest
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.models import WebhookEvent

from . import gateway as gateway_api
from .core import payment_record_result
from .disputes import DISPUTE_EVENTS, dispute_record
from .gateway import GatewayUnavailable, InvalidWebhook
from .mandates import mandate_sync
from .refunds import payment_refunds_sync

logger = logging.getLogger(__name__)

# Events that say something about a payment's intent. They all take the same path: ask the gateway, record the result.
PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    }
)

# Events that say a payment's refunds changed, also when made outside Billpay (Stripe's dashboard). The gateway's list
# of the intent's refunds is what gets recorded, so their order does not matter.
REFUND_EVENTS = frozenset({"charge.refunded", "charge.refund.updated", "refund.created", "refund.updated", "refund.failed"})


def _intent_id(obj: dict) -> str | None:
    intent = obj.get("payment_intent")
    return intent.get("id") if isinstance(intent, dict) else intent or None


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        event = gateway_api.get_gateway().construct_webhook_event(request.body, request.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        logger.warning("webhook rejected: %s", exc)
        return HttpResponseBadRequest("invalid webhook", content_type="text/plain")

    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(
                event_id=event.id, type=event.type, payload=event.data,
                # The whole delivery as signed, so it can be verified and replayed later.
                body=request.body.decode("utf-8", errors="replace"),
                signature=(request.headers.get("Stripe-Signature") or "")[:1000],
                livemode=event.livemode, created=event.created, api_version=(event.api_version or "")[:32],
            )  # fmt: skip
    except IntegrityError:
        stored = WebhookEvent.objects.filter(event_id=event.id).first()
        if stored is None or stored.processed_at is not None:
            return HttpResponse("already received", content_type="text/plain")

    error = ""
    with transaction.atomic():
        # The row lock makes two deliveries of one event process it once.
        stored = WebhookEvent.objects.select_for_update().get(pk=stored.pk)
        if stored.processed_at is not None:
            return HttpResponse("already received", content_type="text/plain")
        try:
            # The service is atomic itself: on an error its writes are undone, but the gateway attempt it recorded
            # before a GatewayUnavailable is kept.
            source = f"webhook {event.id}"
            if event.type in PAYMENT_INTENT_EVENTS and event.object_id:
                payment_record_result(payment_intent_id=event.object_id, source=source)
            elif event.type in REFUND_EVENTS and _intent_id(event.data):
                payment_refunds_sync(payment_intent_id=_intent_id(event.data), source=source)
            elif event.type in DISPUTE_EVENTS and event.object_id:
                dispute_record(event_type=event.type, data=event.data, event_created=event.created, source=source)
            elif event.type == "mandate.updated" and event.object_id:
                mandate_sync(data=event.data, event_created=event.created, source=source)
        except GatewayUnavailable as exc:
            error = f"gateway unavailable: {exc}"
        except Exception as exc:  # stored on the event for staff; the delivery is answered 500 so Stripe retries
            logger.exception("webhook %s (%s) failed", event.id, event.type)
            error = f"{type(exc).__name__}: {exc}"
        stored.error = error[:5000]
        if not error:
            stored.processed_at = timezone.now()
        stored.save(update_fields=["error", "processed_at"])
    if error:
        return HttpResponse("not processed, retry later", status=500, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")
