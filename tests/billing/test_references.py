"""The bank-transfer reference (billing/references.py): ISO 11649 RF and numeric Luhn references, read back from
statement text however the payer typed them, typos refused by the check digit, with the near misses named."""

import pytest
from stdnum import iso11649, luhn

from billing.references import (
    bank_reference,
    bank_reference_display,
    bank_reference_valid,
    near_miss_account_ids,
    references_find,
)


def test_rf_reference_is_iso_11649_valid_and_stable():
    reference = bank_reference(account_id=42, prefix="bp")
    assert reference == bank_reference(account_id=42, prefix="BP")
    assert iso11649.is_valid(reference)  # checked by the library, not by our own code
    assert reference.endswith("BP000000042")
    assert bank_reference_display(reference) == " ".join([reference[:4], reference[4:8], reference[8:12], reference[12:]])


def test_numeric_reference_has_a_luhn_check_digit():
    reference = bank_reference(account_id=42, scheme="numeric", prefix="71")
    assert reference.startswith("71") and luhn.is_valid(reference)
    assert bank_reference_valid(reference)
    assert not bank_reference_valid(reference[:-1] + str((int(reference[-1]) + 1) % 10))


@pytest.mark.parametrize(
    "text",
    [
        "{ref}",
        "Invoice payment {spaced}, thanks",
        "{lower}",
        "/ROC/{ref}INVOICE MARCH",
        "Ref: {no_rf}",  # "RF" left out
        "RF {spaced_body}",
    ],
)
def test_references_are_found_in_free_text(text):
    ref = bank_reference(account_id=1234, prefix="BP")
    text = text.format(
        ref=ref, spaced=bank_reference_display(ref), lower=ref.lower(), no_rf=ref[2:],
        spaced_body=" ".join(ref[2:]),
    )  # fmt: skip
    found = references_find(text, prefix="BP")
    assert found and found[0].valid and found[0].account_id == 1234


def test_a_typo_is_refused_by_the_check_digit_and_the_meant_account_is_a_near_miss():
    ref = bank_reference(account_id=1234)
    typo = ref[:-2] + ref[-1] + ref[-2]  # the last two digits swapped
    found = references_find(f"payment {typo}")
    assert found and not found[0].valid
    assert 1234 in near_miss_account_ids(found[0])
    assert len(near_miss_account_ids(found[0])) < 5


def test_numeric_references_are_only_read_for_a_biller_that_uses_them():
    ref = bank_reference(account_id=77, scheme="numeric", prefix="")
    assert references_find(f"KID {ref}") == []
    assert references_find(f"KID {ref}", numeric_prefix="")[0].account_id == 77
