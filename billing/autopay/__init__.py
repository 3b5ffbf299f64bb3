"""Autopay: enrolment, planning, charging and dunning of card charges on a customer account's bills."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .charging import (  # noqa: F401
    autopay_charge,
    autopay_notice_context,
    autopay_plan,
    autopay_stop_for_paid_bills,
    autopay_sweep,
)
