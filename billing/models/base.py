"""What the billing models share."""


class TransitionsMixin:
    """`can_transition_to` for a model with a `status` field and a TRANSITIONS map: {from status: {allowed to, ...}}.

    The map stays on each model, the one place that says which status changes are allowed; the services check it."""

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


def percent_done(*, processed: int, total: int, finished: bool) -> int:
    """Progress of a file being worked through (a bill import, a bank statement), for its progress bar."""
    if not total:
        return 100 if finished else 0
    return min(100, round(100 * processed / total))
