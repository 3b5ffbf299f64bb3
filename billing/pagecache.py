"""Whole rendered payer pages from the shared cache, served only while every row they were rendered from is unchanged.

Rendering a page through Django's templates costs several times what serving it does, so a page that a payer opens
again and again (home, the lookup form, the pay screen, the dashboard) is kept rendered in the shared cache. It is
served from there only when nothing it shows can have changed:

- **the rows it read**: while a page renders, the SELECT statements it runs are recorded. A later request runs the same
  statements again, as they are (no ORM, no template), and compares a digest of their rows with the digest stored
  beside the page. Any change to any row the page read (a payment, a bill, an enrolment, the payer's own user row)
  changes the digest, and the page renders again. Nothing has to remember to drop the page: writes made with raw SQL
  or from another client count too. The digest is taken *before* the render it is stored with (from the statements
  the previous render recorded), so a change racing the render can only cost a needless render, never a stale page.
  A page's first request therefore only records; its second stores the page; later ones are served from it.
- **what comes from elsewhere**: the biller and its plan rules come from the shared cache, not from a query; any change
  to them drops every page (`pages_forget`, run with `biller_cache_forget`; a process that keeps its own copies of
  pages, `_Local`, sees another machine's change within a second). Dates are on the biller's clock, so a
  page is never served in a later quarter of an hour than it was rendered in (every time zone's midnight falls on a
  quarter hour). The release (code, templates, translations, migrations, static files) is part of the key
  (`_release_stamp`), and so are the settings, so a deploy never serves the previous release's pages or runs its
  statements.
- **who is asking**: the key holds the page, its query string, the language, the session's user and its
  authentication hash, and what the view says identifies the page (`key` below: the account a guest was granted).

The visitor's CSRF token and the response's CSP nonce are never stored: they are replaced by markers in the stored copy
and filled in again for every visitor. A page is not cached when its render wrote anything (any statement but a
SELECT), answered anything but 200, or when the visitor has messages waiting to be shown. `PAGE_CACHE_SECONDS=0`
turns it all off.

The statements and parameters stored here are run again as they are: whoever can write to the shared cache could run
SQL, as whoever can write to it could already unpickle objects in every process (the cached biller, sessions).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import connections, transaction
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.utils.functional import empty
from django.utils.translation import get_language

logger = logging.getLogger(__name__)

_GENERATION_KEY = "billpay:pages:generation"
_CSRF_MARK = "__billpay_page_csrf__"
_NONCE_MARK = "__billpay_page_nonce__"
# What `{% csrf_token %}` writes (django/template/defaulttags.py, CsrfTokenNode).
_CSRF_INPUT = re.compile(r'(<input type="hidden" name="csrfmiddlewaretoken" value=")([^"]*)(">)')
_QUARTER_HOUR = 15 * 60
# Only statements that read. A render that runs anything else (a write, a lock) is not cached.
_READS = ("SELECT ", "(SELECT ")


def pages_forget() -> None:
    """Every cached page is stale: the next request to each renders it again. Run whenever the biller or its plan
    rules change (they reach pages from the shared cache, not from a query the digest would see)."""
    cache.delete(_GENERATION_KEY)
    _local.forget()


def page_cached(key=None, *, query_strings: tuple[str, ...] = ("",)):
    """A view decorator: serve the view's GET answer from the shared cache while it is still what the view would render.

    `key(request)` returns what, beside the page itself, the language and the signed-in user, tells this page apart
    (a guest's granted account), or None when the page must not be cached for this request. Only the query strings
    in `query_strings` are cached, so nobody can fill the cache with made-up ones. Put it outside the view's other
    decorators, so that the queries they make (the user, the verified address) are recorded and checked too."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not _cacheable(request, query_strings):
                return view(request, *args, **kwargs)
            extra = key(request) if key is not None else ()
            if extra is None:
                return view(request, *args, **kwargs)
            return _serve(request, _page_key(request, view, extra), lambda: view(request, *args, **kwargs))

        return wrapper

    return decorator


def _cacheable(request, query_strings: tuple[str, ...]) -> bool:
    return (
        settings.PAGE_CACHE_SECONDS > 0
        and request.method == "GET"
        and request.META.get("QUERY_STRING", "") in query_strings
        and not len(get_messages(request))  # looks without marking them shown
    )


def _page_key(request, view, extra) -> str:
    session = request.session
    parts = (
        _release_stamp(),
        f"{view.__module__}.{view.__qualname__}",
        request.get_full_path(),
        get_language(),
        session.get(SESSION_KEY),
        session.get(HASH_SESSION_KEY),
        extra,
    )
    return "billpay:page:" + hashlib.blake2b(repr(parts).encode(), digest_size=20).hexdigest()


def _serve(request, key: str, render) -> HttpResponse:
    generation, entry = _local.get(key)
    if generation is None:
        found = cache.get_many([_GENERATION_KEY, key])
        generation = found.get(_GENERATION_KEY) or _generation_new()
        entry = found.get(key)
        _local.put(key, entry, generation, read_now=True)
    quarter = int(time.time() // _QUARTER_HOUR)
    # Before the render: a change racing it can only cost a needless render, never a stale page.
    digest = _digest(entry["queries"]) if entry is not None else None
    if (
        digest is not None
        and entry["page"] is not None
        and (entry["generation"], entry["quarter"], entry["digest"]) == (generation, quarter, digest)
    ):
        return _filled(request, *entry["page"])
    queries: list = []
    _user_load_within(request, queries)
    with _recording(queries):
        response = render()
    if response.status_code != 200 or response.streaming or response.cookies:
        return response
    if any(query is None for query in queries):  # the render wrote or locked something
        return response
    # The page is stored only with a digest read before it rendered, of the very statements it ran; otherwise only
    # the statements, for the next request to read the digest of.
    complete = digest is not None and entry["queries"] == queries
    _store(
        key,
        {
            "generation": generation,
            "quarter": quarter,
            "queries": queries,
            "digest": digest if complete else None,
            "page": _marked(request, response) if complete else None,
        },
        generation,
    )
    return response


def _store(key: str, entry: dict, generation: str) -> None:
    try:
        cache.set(key, entry, settings.PAGE_CACHE_SECONDS)
    except Exception:  # noqa: BLE001 - a parameter that cannot be pickled, the cache away: the page was served anyway
        logger.warning("page cache: could not store a page", exc_info=True)
        return
    _local.put(key, entry, generation)


class _Local:
    """This process's copy of the pages it served last, so that a page served again costs no round trip to the
    shared cache: the generation (every page's "the biller has not changed") is read from the shared cache at most
    once a second, so another machine's biller change reaches this process's pages within a second (this process's
    own at once: `pages_forget`). The rows are checked by their digest on every visit as always."""

    SIZE = 256  # pages; a few tens of KB each
    GENERATION_SECONDS = 1.0

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, dict] = OrderedDict()
        self.generation, self.read_at = None, 0.0

    def get(self, key: str) -> tuple[str | None, dict | None]:
        """(generation, entry) while the generation is fresh and the page is here; (None, None) otherwise."""
        with self.lock:
            if self.generation is None or time.monotonic() - self.read_at > self.GENERATION_SECONDS:
                return None, None
            entry = self.entries.get(key)
            if entry is None:
                return None, None
            self.entries.move_to_end(key)
            return self.generation, entry

    def put(self, key: str, entry: dict | None, generation: str, *, read_now: bool = False) -> None:
        """Keep `entry` under `generation`; `read_now`: the generation was just read from the shared cache."""
        with self.lock:
            if generation != self.generation:
                self.entries.clear()
                self.generation, self.read_at = generation, 0.0
            if read_now:
                self.read_at = time.monotonic()
            if entry is None or entry["generation"] != generation:
                self.entries.pop(key, None)
                return
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > self.SIZE:
                self.entries.popitem(last=False)

    def forget(self) -> None:
        with self.lock:
            self.entries.clear()
            self.generation = None


_local = _Local()


def _generation_new() -> str:
    cache.add(_GENERATION_KEY, secrets.token_hex(8), None)
    return cache.get(_GENERATION_KEY)


def _user_load_within(request, queries) -> None:
    """The signed-in user is read lazily; reading it inside the recording puts the user's row in the digest."""
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "_wrapped", None) is empty:
        with _recording(queries):
            user._setup()


class _recording:
    """Record every statement run on any database while the block runs: (alias, sql, params) for a read, None for
    anything else."""

    def __init__(self, queries: list):
        self.queries = queries
        self.stack = []

    def __enter__(self):
        for alias in connections:
            wrapper = functools.partial(self._record, alias)
            self.stack.append(connections[alias].execute_wrapper(wrapper))
            self.stack[-1].__enter__()
        return self

    def __exit__(self, *exc):
        while self.stack:
            self.stack.pop().__exit__(*exc)
        return False

    def _record(self, alias, execute, sql, params, many, context):
        read = not many and sql.lstrip().upper().startswith(_READS) and " FOR UPDATE" not in sql.upper()
        self.queries.append((alias, sql, tuple(params) if params is not None else None) if read else None)
        return execute(sql, params, many, context)


def _digest(queries: list) -> str | None:
    """The rows the statements return now, as one digest; None when one of them fails (the page renders)."""
    digest = hashlib.blake2b(digest_size=20)
    for alias, group in itertools.groupby(queries, key=lambda query: query[0]):
        connection = connections[alias]
        try:
            # In a transaction (a test's, a view's), a failing statement must not abort the rest of it.
            with transaction.atomic(using=alias) if connection.in_atomic_block else contextlib.nullcontext():
                digest.update(repr(_rows_digested(connection, list(group))).encode())
        except Exception:  # noqa: BLE001 - a statement that no longer runs only means "render the page"
            logger.warning("page cache: a page's statements did not run again; rendering it", exc_info=True)
            return None
    return digest.hexdigest()


def _rows_digested(connection, queries: list) -> list:
    """What the statements return, in as few round trips as the database allows. PostgreSQL runs them all as one
    statement and answers one SHA-256 per statement of its rows as text (sorted, so that an order it may choose
    differently does not count as a change) instead of sending every row to be parsed here, which cost more than
    running them. SQLite runs in this process: each statement's rows as they are."""
    if connection.vendor == "postgresql":
        return _pg_rows_digested(connection, queries)
    rows = []
    with connection.cursor() as cursor:
        for _alias, sql, params in queries:
            cursor.execute(sql, params)
            rows.append(cursor.fetchall())
    return rows


def _pg_rows_digested(connection, queries: list) -> list:
    """The one statement is prepared once per connection (server-side binding, psycopg's own cursor): a page's
    statement is the same for every account, and planning it cost more than running it. Not through pgbouncer in
    transaction mode, which cannot keep prepared statements: there it is sent like any other statement."""
    params = [value for _alias, _sql, query_params in queries for value in query_params or ()]
    if connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        with connection.cursor() as cursor:
            cursor.execute(_pg_statement(tuple(sql for _alias, sql, _params in queries)), params)
            return cursor.fetchall()
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:  # Django's default (client-side binding never prepares): prepare only ours
        raw.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
    # A raw cursor takes PostgreSQL's own `$1` placeholders as they are: psycopg's own cursor would look for `%s` in
    # this long statement on every execution (it remembers that only for short ones). As bytes, built once per page
    # (a page's statements are the same objects while this process keeps the page): psycopg neither encodes the
    # statement again nor hashes a new copy of it to find it among the prepared ones.
    statement = _pg_statement_numbered(tuple(sql for _alias, sql, _params in queries))
    with psycopg.RawCursor(raw) as cursor:
        cursor.execute(statement, params, prepare=True)
        return cursor.fetchall()


@functools.lru_cache(maxsize=512)
def _pg_statement(sqls: tuple[str, ...]) -> str:
    """A page's statements as one, answering each one's rows as one SHA-256 (Django's `%s` placeholders)."""
    return "SELECT ARRAY[" + ", ".join(_PG_ROWS_DIGEST.format(sql=sql) for sql in sqls) + "]"


@functools.lru_cache(maxsize=512)
def _pg_statement_numbered(sqls: tuple[str, ...]) -> bytes:
    """The same with PostgreSQL's `$1` placeholders, encoded as the connection sends it (UTF-8)."""
    return _numbered(_pg_statement(sqls)).encode()


def _numbered(sql: str) -> str:
    """Django's `%s` placeholders as `$1, $2, …`, and its `%%` as `%`."""
    numbers = itertools.count(1)
    return _PLACEHOLDER.sub(lambda found: "%" if found.group() == "%%" else f"${next(numbers)}", sql)


_PLACEHOLDER = re.compile(r"%[s%]")


_PREPARE_ONLY_WHEN_ASKED = 2**31 - 1
_PG_ROWS_DIGEST = (
    "(SELECT encode(sha256(convert_to(count(*) || ':' || coalesce(string_agg(r::text, ',' ORDER BY r::text), ''), "
    "'UTF8')), 'hex') FROM ({sql}) r)"
)


def _marked(request, response) -> tuple[dict, str]:
    """The page as stored: the headers the view set, and its body with the CSRF tokens and CSP nonce replaced by
    markers."""
    html = _CSRF_INPUT.sub(rf"\g<1>{_CSRF_MARK}\g<3>", response.content.decode(response.charset))
    nonce = getattr(request, "_csp_nonce", None)
    if isinstance(nonce, str):
        html = html.replace(nonce, _NONCE_MARK)
    return dict(response.items()), html


def _filled(request, headers: dict, html: str) -> HttpResponse:
    """A stored page with this visitor's CSRF token and this response's CSP nonce (which puts it in the header)."""
    if _CSRF_MARK in html:
        html = html.replace(_CSRF_MARK, get_token(request))
    if _NONCE_MARK in html:
        html = html.replace(_NONCE_MARK, str(request.csp_nonce))
    return HttpResponse(html, headers=headers)


# What pages are rendered with besides data: the project's code, templates and compiled translations.
_RELEASE_FILES = ("accounts/**/*", "billing/**/*", "config/**/*", "notifications/**/*", "templates/**/*", "locale/**/*.mo")


@functools.lru_cache(maxsize=1)
def _release_stamp() -> str:
    """A digest of the release this process runs: the files above (migrations included, so a statement stored by
    the previous schema is never run again), the static files' manifest (their hashed names) and the settings (a new
    publishable key, say). Read once per process."""
    base = Path(settings.BASE_DIR)
    files = sorted(
        path
        for pattern in _RELEASE_FILES
        for path in base.glob(pattern)
        if path.is_file() and path.suffix in (".py", ".html", ".txt", ".mo")
    )
    manifest = Path(settings.STATIC_ROOT or "") / "staticfiles.json"
    digest = hashlib.blake2b(repr(_plain_settings()).encode(), digest_size=12)
    for path in [*files, manifest] if manifest.is_file() else files:
        # Named relative to the project: machines that install the release in different folders share its pages.
        digest.update(str(path.relative_to(base) if path.is_relative_to(base) else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _plain_settings() -> list:
    """The settings made of plain values: the same on every machine of one deployment (objects, whose text would
    differ from process to process, are left out; a set is written sorted, since its order changes with each
    process's string hashing)."""
    return [
        (name, _canonical(value))
        for name in sorted(dir(settings))
        if name.isupper() and _plain(value := getattr(settings, name))
    ]


def _canonical(value):
    if isinstance(value, (set, frozenset)):
        return ("set", sorted(repr(_canonical(item)) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_canonical(item) for item in value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    return value


def _plain(value) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_plain(key) and _plain(item) for key, item in value.items())
    return False
