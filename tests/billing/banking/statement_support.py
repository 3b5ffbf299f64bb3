"""Sample statements (tests/billing/banking/samples/) and the accounts they pay.

The samples are written like real banks' files: a Commerzbank-style camt.053.001.02 with a batch booking, a
Deutsche Bank-style MT940 with German structured :86: fields, a BAI2 file with its control totals, and our CSV. They
all hold the same eight entries, in their own format:

1. 250.00 from Zoë Ångström quoting A's reference (structured): A owes exactly that;
2. 120.50 from Łukasz Wiśniewski with B's reference typed in lower case with spaces in free text: B owes 200.00;
3. 179.50 from محمد رضایی with no reference: C owes exactly that (unmatched, suggested by amount and name);
4. a 4.90 bank fee (money out, ignored);
5. 300.00 for D (reference in the end-to-end id): D owes 200.00, so 100.00 is held as credit;
6. 80.00 quoting E's reference with two digits swapped (refused by the check digit; E is the suggestion);
7. 55.00 quoting a valid reference of another biller's account F (refused);
8. the return of entry 1 by the payer's bank (account closed).

References are put in when a test renders a sample, since they follow the accounts' ids.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from billing.models import Biller, CustomerAccount
from tests.factories import CustomerAccountFactory, make_bill

SAMPLES = Path(__file__).parent / "samples"
FILES = {
    "camt053": ("commerzbank_camt053.xml", "EUR"),
    "mt940": ("deutsche_bank_mt940.sta", "EUR"),
    "bai2": ("wells_bai2.txt", "USD"),
    "csv": ("bank_transfer_statement.csv", "USD"),
}


def typo(reference: str) -> str:
    """Two neighbouring digits of the account id swapped: the check digits no longer fit."""
    i = len(reference) - 3
    assert reference[i] != reference[i + 1], "pick accounts whose id has different last digits"
    return reference[:i] + reference[i + 1] + reference[i] + reference[i + 2 :]


def spaced(reference: str) -> str:
    return " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))


def render(fmt: str, accounts: dict[str, CustomerAccount], *, statement_id: str = "214") -> bytes:
    name, _currency = FILES[fmt]
    refs = {key: account.bank_reference for key, account in accounts.items()}
    values = {
        "STATEMENT_ID": statement_id,
        "REF_A": refs["A"],
        "REF_A_SPACED": spaced(refs["A"]),
        "REF_B_LOWER_SPACED": spaced(refs["B"]).lower(),
        "REF_D": refs["D"],
        "REF_E_TYPO": typo(refs["E"]),
        "REF_F": refs["F"],
    }
    return Template((SAMPLES / name).read_text(encoding="utf-8")).substitute(values).encode("utf-8")


def sample_accounts(biller: Biller, other_biller: Biller) -> dict[str, CustomerAccount]:
    """A-E at `biller` with the bills the sample pays, F at `other_biller`. Ids are bumped past ones whose last two
    digits are equal, so that swapping them really is a typo."""
    names = {"A": "Zoë Ångström", "B": "Łukasz Wiśniewski", "C": "محمد رضایی", "D": "Jürgen Müller", "E": "Ana Núñez"}
    owed = {"A": 25000, "B": 20000, "C": 17950, "D": 20000, "E": 8000}
    accounts = {}
    for key in "ABCDEF":
        while True:
            account = CustomerAccountFactory(
                biller=other_biller if key == "F" else biller, holder_name=names.get(key, "Chloé Dubois")
            )
            digits = f"{account.pk:09d}"
            if digits[-3] != digits[-2]:
                break
        accounts[key] = account
        if key in owed:
            make_bill(account, amounts=(owed[key],))
    return accounts
