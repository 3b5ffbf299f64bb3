# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
# billing/enrollments.py was split into billing/methods/ (saved cards), billing/enrolment/ (paperless, guest links)
# and billing/autopay/ (autopay enrolment and its selectors).
from .autopay.enrolment import (  # noqa: F401
    autopay_cancel,
    autopay_consent_text,
    autopay_enroll,
    autopay_pause,
    autopay_resume,
    autopay_transition,
)
from .autopay.selectors import autopay_current, autopay_upcoming, enrollment_statuses  # noqa: F401
from .enrolment.guest import (  # noqa: F401
    GUEST_CODE_MAX_ATTEMPTS,
    GUEST_CODE_MAX_SENDS,
    guest_autopay_complete,
    guest_enrollment_links_send,
    guest_link_code_check,
    guest_link_code_send,
    guest_link_get,
    guest_link_holder_ok,
    guest_paperless_confirm,
)
from .enrolment.links import token_hash as _token_hash  # noqa: F401
from .enrolment.paperless import (  # noqa: F401
    paperless_cancel,
    paperless_consent_text,
    paperless_current,
    paperless_enroll,
)
from .enrolment.selectors import paper_bill_accounts  # noqa: F401
from .methods.selectors import user_payment_methods  # noqa: F401
from .methods.services import (  # noqa: F401
    SAVED_CARD_NEEDS_LOOKUP,
    gateway_customer_get_or_create,
    payment_method_attach,
    payment_method_clear_backup,
    payment_method_make_backup,
    payment_method_make_default,
    payment_method_may_pay,
    payment_method_remove,
    payment_method_save_from_setup,
    payment_method_setup_start,
)
