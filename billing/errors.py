class ApplicationError(Exception):
    """A broken business rule. The message is safe and meant to be shown to the person who caused it."""

    def __init__(self, message, *, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
