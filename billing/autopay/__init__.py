"""Autopay: enrolment, planning, charging and dunning of card charges on a customer account's bills."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .charges import autopay_stop_for_paid_bills  # noqa: F401
from .charging import autopay_charge  # noqa: F401
from .notices import autopay_notice_context  # noqa: F401
from .planning import autopay_plan, autopay_sweep  # noqa: F401
