"""Running one piece of work in several threads at once, each with its own database connection, as two workers or
two web processes would (the tests that need PostgreSQL's row locks)."""

import threading

from django.db import connections


def at_once(work, *, threads: int = 2, timeout: float = 30) -> list[Exception]:
    """Start `work()` in `threads` threads released together; wait for them and return the errors they raised."""
    start = threading.Barrier(threads)
    errors: list[Exception] = []

    def run():
        try:
            start.wait()
            work()
        except Exception as error:  # noqa: BLE001 - returned to the test, which asserts on them
            errors.append(error)
        finally:
            connections.close_all()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout)
    return errors
