"""After the load: what the stand-in charged against what we recorded, bills, notices. Run with the cluster's
environment (production settings) by bench/load/run_load.py. Prints one line per check; exits 1 if any fails.

    python bench/load/check.py --localstripe URL --mail DIR
"""

import argparse
import email
import email.policy
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import django  # noqa: E402

django.setup()

from django.db.models import F, Sum  # noqa: E402
from localstripe_server import list_objects  # noqa: E402

from billing.models import Bill, Payment, PaymentAllocation  # noqa: E402
from notifications.models import Notification  # noqa: E402


def sent_notice_keys(folder: Path) -> list[str]:
    keys = []
    for path in folder.glob("*.log"):
        for chunk in path.read_bytes().split(b"-" * 79):
            if chunk.strip():
                message = email.message_from_bytes(chunk.strip(), policy=email.policy.default)
                keys.append(message["X-Billpay-Notification"])
    return keys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--localstripe", required=True)
    parser.add_argument("--mail", required=True)
    args = parser.parse_args()
    results = []

    charged = {i["id"]: i for i in list_objects(args.localstripe, "/v1/payment_intents") if i["status"] == "succeeded"}
    recorded = Counter(
        Payment.objects.filter(gateway_payment_id__in=list(charged)).values_list("gateway_payment_id", flat=True)
    )
    missing = [i for i in charged if recorded[i] == 0]
    doubled = [i for i, n in recorded.items() if n > 1]
    wrong = [
        p.confirmation_number
        for p in Payment.objects.filter(gateway_payment_id__in=list(charged))
        if p.status != Payment.Status.SUCCEEDED or p.total_charged != charged[p.gateway_payment_id]["amount"]
    ]
    results.append(
        (not missing and not doubled and not wrong,
         f"{len(charged)} payments charged by the stand-in; recorded once each: missing {len(missing)}, "
         f"twice {len(doubled)}, wrong status or amount {len(wrong)}")
    )  # fmt: skip
    unbacked = Payment.objects.filter(status=Payment.Status.SUCCEEDED, method=Payment.Method.CARD).exclude(
        gateway_payment_id__in=list(charged)
    )
    results.append((not unbacked.exists(), f"succeeded card payments the stand-in never charged: {unbacked.count()}"))

    over_allocated = [
        p.pk
        for p in Payment.objects.filter(gateway_payment_id__in=list(charged)).annotate(
            applied=Sum("allocations__amount")
        )
        if p.applied != p.amount
    ]
    results.append((not over_allocated, f"payments applied to bills more or less than once: {len(over_allocated)}"))

    overpaid = Bill.objects.filter(amount_paid__gt=F("total")).count()
    allocations = dict(
        PaymentAllocation.objects.values_list("bill").annotate(s=Sum(F("amount") - F("amount_reversed"))).order_by()
    )
    mismatched = [pk for pk, paid in Bill.objects.values_list("pk", "amount_paid") if allocations.get(pk, 0) != paid]
    results.append(
        (overpaid == 0 and not mismatched,
         f"bills overpaid: {overpaid}; bills whose paid amount differs from their payments: {len(mismatched)}")
    )  # fmt: skip

    keys = sent_notice_keys(Path(args.mail))
    twice = [k for k, n in Counter(keys).items() if n > 1]
    sent_rows = Notification.objects.filter(status=Notification.Status.SENT, channel="email").count()
    results.append(
        (not twice, f"e-mail notices sent: {len(keys)} ({sent_rows} rows marked sent); sent twice: {len(twice)}")
    )

    for ok, line in results:
        print(("PASS " if ok else "FAIL ") + line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
