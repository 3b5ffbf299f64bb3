from django.conf import settings
from django.core.files.storage import FileSystemStorage


def private_storage():
    """Storage for bill PDFs and uploaded files: outside MEDIA_URL, served only through views that check access."""
    return FileSystemStorage(location=settings.PRIVATE_STORAGE_ROOT, base_url=None)
