"""Who gets which notice on which channel, and when a send must wait for the end of quiet hours.

The rule, in order:
1. The biller allows the channel for that kind (NoticePolicy.channels_by_kind; empty = every channel for every kind).
2. The account's explicit choice (a NoticePreference row) for that kind and channel, if there is one.
3. Otherwise the default: e-mail for every kind when the account has an address and `email_notices` is on; SMS only
   when the account opted in (`sms_notices`) and only for the urgent kinds in SMS_DEFAULT_KINDS.
4. Whatever was chosen, the channel needs an address (e-mail, phone) and, for SMS, a number that has not said STOP.

Everything here is pure: callers load policies, preferences and opt-outs in bulk and pass them in, so planning 500
bills costs the same few queries as planning one.
"""

import datetime as dt
import re
from dataclasses import dataclass

from django.db.models import Q

from billing.clock import zone_of

from .models import ChannelName, NoticeKind

SMS_DEFAULT_KINDS = frozenset(
    {NoticeKind.DUE_UPCOMING, NoticeKind.DUE_TODAY, NoticeKind.PAST_DUE, NoticeKind.PAYMENT_FAILED}
)
# Answers to something the payer just did: they go out at once, quiet hours or not.
TRANSACTIONAL_KINDS = frozenset({NoticeKind.PAYMENT_RECEIVED, NoticeKind.REFUND_ISSUED, NoticeKind.MANDATE_CONFIRMED})
DEFAULT_SEND_TIME = dt.time(9, 0)
DEFAULT_CATCH_UP_DAYS = 2


def phone_normalize(value: str) -> str:
    """E.164-ish: a leading + and digits only, so "+1 (555) 010-0" and "+15550100" are the same number for STOP."""
    value = (value or "").strip()
    digits = re.sub(r"\D", "", value)
    if not digits:
        return ""
    if value.startswith("+"):
        return "+" + digits
    if value.startswith("00"):
        return "+" + digits[2:]
    return digits  # no country code: kept as given, and the provider will say so


@dataclass(frozen=True)
class Policy:
    """A biller's NoticePolicy, or the defaults when it has none."""

    channels_by_kind: dict
    send_time: dt.time = DEFAULT_SEND_TIME
    quiet_hours_start: dt.time | None = None
    quiet_hours_end: dt.time | None = None
    catch_up_days: int = DEFAULT_CATCH_UP_DAYS

    @classmethod
    def of(cls, row) -> "Policy":
        if row is None:
            return cls(channels_by_kind={})
        return cls(
            channels_by_kind=row.channels_by_kind or {},
            send_time=row.send_time or DEFAULT_SEND_TIME,
            quiet_hours_start=row.quiet_hours_start,
            quiet_hours_end=row.quiet_hours_end,
            catch_up_days=row.catch_up_days,
        )

    def allows(self, kind: str, channel: str) -> bool:
        if not self.channels_by_kind:
            return True
        return channel in (self.channels_by_kind.get(kind) or ())


# The account's field that holds each channel's address: what `channel_address` reads and `payment_addressed_q`
# filters on, so a channel added here is seen by both.
ACCOUNT_ADDRESS_FIELDS = {ChannelName.EMAIL: "email", ChannelName.SMS: "phone"}


def channel_address(account, channel: str) -> str:
    field = ACCOUNT_ADDRESS_FIELDS.get(channel)
    if field is None:
        return ""
    value = getattr(account, field)
    return phone_normalize(value) if channel == ChannelName.SMS else (value or "").strip()


def payment_addressed_q() -> Q:
    """The payments (with their account) for which `notice_address` may find an address on some channel, as a filter:
    a typed e-mail, or any of the account's addresses. A superset (an address of blanks passes here and is dropped by
    `notice_address`): it lets a batch skip reading payments nobody can be told of."""
    addressed = ~Q(payer_email="")
    for field in ACCOUNT_ADDRESS_FIELDS.values():
        addressed |= ~Q(**{f"account__{field}": ""})
    return addressed


def notice_address(account, channel: str, payment=None) -> str:
    """Where a notice goes. The e-mail about a payment or a refund goes to the address the payer typed when paying
    (Payment.payer_email: a guest payer need not be the account holder); everything else to the account's address."""
    if channel == ChannelName.EMAIL and payment is not None and (payment.payer_email or "").strip():
        return payment.payer_email.strip()
    return channel_address(account, channel)


def channel_wanted(
    *, account, kind: str, channel: str, policy: Policy, choices: dict, opted_out: set, payment=None
) -> bool:
    """Should this account get this kind on this channel? `choices` maps (account_id, kind, channel) to the explicit
    choice; `opted_out` is the set of normalized phone numbers that said STOP. `payment` (for payment and refund
    notices): an address the payer typed is the e-mail recipient, and asks for the e-mail by default."""
    if not policy.allows(kind, channel):
        return False
    address = notice_address(account, channel, payment)
    if not address:
        return False
    if channel == ChannelName.SMS and address in opted_out:
        return False
    explicit = choices.get((account.pk, kind, channel))
    if explicit is not None:
        return explicit
    if channel == ChannelName.EMAIL:
        return bool(account.email_notices) or address != channel_address(account, channel)
    if channel == ChannelName.SMS:
        return bool(account.sms_notices) and kind in SMS_DEFAULT_KINDS
    return False  # a new channel is opt-in until it says otherwise


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time
    tz: dt.tzinfo

    def end_if_inside(self, moment: dt.datetime) -> dt.datetime | None:
        """The moment quiet hours end, if `moment` falls inside them; None if it does not.

        A window that crosses midnight (22:00–07:00) is quiet from the start to midnight and from midnight to the end.
        Times are local wall-clock times in `tz`, so daylight-saving changes move the window with the clock."""
        if self.start == self.end:
            return None
        local = moment.astimezone(self.tz)
        now = local.time()
        if self.start < self.end:
            inside = self.start <= now < self.end
            end_date = local.date()
        else:
            inside = now >= self.start or now < self.end
            end_date = local.date() + dt.timedelta(days=1) if now >= self.start else local.date()
        if not inside:
            return None
        return dt.datetime.combine(end_date, self.end, tzinfo=self.tz)


def quiet_hours_for(*, policy: Policy, biller, settings_row) -> QuietHours | None:
    """The account's own quiet hours when it set them, else the biller's; in the account's zone, else the biller's."""
    tz = zone_of((settings_row.time_zone if settings_row and settings_row.time_zone else None) or biller.time_zone)
    if settings_row and settings_row.quiet_hours_start and settings_row.quiet_hours_end:
        return QuietHours(settings_row.quiet_hours_start, settings_row.quiet_hours_end, tz)
    if policy.quiet_hours_start and policy.quiet_hours_end:
        return QuietHours(policy.quiet_hours_start, policy.quiet_hours_end, tz)
    return None


def outside_quiet_hours(moment: dt.datetime, quiet: QuietHours | None) -> dt.datetime:
    """`moment`, or the end of the quiet hours it falls in."""
    if quiet is None:
        return moment
    end = quiet.end_if_inside(moment)
    return end if end is not None else moment
