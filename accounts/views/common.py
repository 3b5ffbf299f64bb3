"""What the payer view modules share."""

from django.http import Http404

from .. import selectors


def linked_or_404(request, account_id: int):
    """The login's link to the account. An account that is not linked to the login answers 404, exactly like one that
    does not exist, so nobody can probe for other people's accounts by number."""
    link = selectors.user_account_link(user=request.user, account_id=account_id)
    if link is None:
        raise Http404
    return link


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None
