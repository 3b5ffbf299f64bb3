"""Where private files live: bill PDFs, uploaded import files, statements. `STORAGES["private"]` says: a folder
locally, a private S3-compatible bucket in production (config/settings/production.py), so that every web and worker
machine sees the same files. They are never served from a public URL: views that check access stream them."""

from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

PRIVATE_STORAGE_ALIAS = "private"


class _PrivateStorage(LazyObject):
    """The configured private storage, looked up when first used (and again after a test changes STORAGES)."""

    def _setup(self):
        self._wrapped = storages[PRIVATE_STORAGE_ALIAS]


_private = _PrivateStorage()


def private_storage():
    """The storage of every private FileField (a callable, so migrations do not record the backend)."""
    return _private


@receiver(setting_changed)
def _private_storage_reset(*, setting, **kwargs):
    if setting == "STORAGES":
        _private._wrapped = empty
