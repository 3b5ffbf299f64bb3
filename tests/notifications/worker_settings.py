"""Settings for the Celery worker the integration tests start: the test settings, with the channels writing files the
test process can read (the worker is another process, so locmem outboxes would be invisible)."""

import os

from config.settings.test import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["BILLPAY_TEST_EMAIL_DIR"]
SMS_BACKEND = "file"
SMS_FILE_PATH = os.environ["BILLPAY_TEST_SMS_DIR"]
SITE_URL = "https://pay.riverside.example"
NOTIFICATIONS_ATTACH_BILL_PDF = False
