"""Settings for the Celery worker the autopay kill test starts: the test settings, plus the test-only pause point
(billing.autopay.charging._test_pause_point) that makes the kill land exactly after the gateway charged and before
anything was recorded. Never set in config/settings."""

import os

from config.settings.test import *  # noqa: F403

AUTOPAY_TEST_PAUSE_FILE = os.environ["BILLPAY_TEST_AUTOPAY_PAUSE_FILE"]
AUTOPAY_TEST_PAUSE_SECONDS = 90
