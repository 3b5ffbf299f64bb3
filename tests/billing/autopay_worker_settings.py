"""Settings for the Celery worker the autopay kill test starts: the test settings, plus a pause that makes the kill
land exactly after the gateway charged and before anything was recorded.

Before its first task the worker wraps `billing.autopay.charging.payment_confirm_off_session` (the off-session confirm of step 3): once
the gateway has answered, the wrapper writes the marker file named by BILLPAY_TEST_AUTOPAY_PAUSE_FILE and sleeps, so
the test can SIGKILL the worker at that point. Once per marker file: a test that wants no pause writes the file first.
Production code has no hook for this."""

import os
import time
from pathlib import Path

from celery.signals import task_prerun

from config.settings.test import *  # noqa: F403

_pause_file = os.environ["BILLPAY_TEST_AUTOPAY_PAUSE_FILE"]
_pause_seconds = 90


def _pause_after_the_confirm(**_kwargs) -> None:
    from billing.autopay import charging

    confirm = charging.payment_confirm_off_session
    if getattr(confirm, "pauses_for_the_kill_test", False):
        return

    def confirm_then_pause(payment, **kwargs):
        intent = confirm(payment, **kwargs)
        if not os.path.exists(_pause_file):
            Path(_pause_file).write_text(str(os.getpid()))
            time.sleep(_pause_seconds)
        return intent

    confirm_then_pause.pauses_for_the_kill_test = True
    charging.payment_confirm_off_session = confirm_then_pause


task_prerun.connect(_pause_after_the_confirm, weak=False, dispatch_uid="autopay-kill-test-pause")
