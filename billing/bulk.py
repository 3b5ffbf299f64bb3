"""Writing many rows in one statement, where Django's bulk methods cost more than the database's work: the statement
matcher writes about five rows a line (payment, allocation, history, credit, the line's outcome), and its speed is
measured against one bare `bulk_create` a line (docs/performance.md).

`rows_insert` is `bulk_create` for append-only rows whose ids the caller does not need back (history, allocations,
credit entries, statement lines): the same values (each field's `pre_save` and `get_db_prep_save`), sent as one
INSERT … VALUES without the compiler's per-value expression handling, which was most of the cost.

`bulk_update` builds a `CASE WHEN pk = … THEN …` per row and per field, and resolving those expressions costs more
than the database's work (a statement chunk of 200 lines spent most of its time there). `rows_update` sends the rows
as a VALUES list instead, joined on the primary key:

    UPDATE t SET a = v.column2, b = v.column3 FROM (VALUES (%s, %s, %s), …) AS v WHERE t.id = v.column1

PostgreSQL and SQLite (3.33 and later) both read `UPDATE … FROM`. On PostgreSQL the rows go as one typed array per
column (`UNNEST(%s::bigint[], …)`), as Django's own bulk_create does there, since psycopg reads a statement's
placeholders one by one. Callers hold the rows' locks: this writes what the instances say, like
`save(update_fields=…)` would, `auto_now` fields included.

`WriteBatch` queues such inserts and updates and sends them together: on PostgreSQL as the data-modifying `WITH`
parts of one statement (a round trip and a statement each was most of a small step's cost: an autopay charge went
from 21 statements to 11), elsewhere one statement each, in order. The parts must not depend on each other.
"""

from __future__ import annotations

import functools

from django.db import connections, models, router
from django.utils import timezone

# SQLite since 3.32 allows 32,766 parameters a statement (Django assumes the old 999 for its own bulk methods).
_MAX_PARAMS = 30_000


def _plain_type(field):
    """The Python type whose values a field sends to the database as they are (get_db_prep_save would hand them back
    unchanged), or None: str for text, int for integers and foreign keys to an integer key, bool for booleans."""
    if field.is_relation:
        return int if isinstance(field.target_field, (models.AutoField, models.BigAutoField)) else None
    if isinstance(field, models.BooleanField):
        return bool
    if isinstance(field, (models.CharField, models.TextField)):
        return str
    if isinstance(field, models.IntegerField):  # the big, small and positive ones too
        return int
    return None


def _converters(fields, connection) -> list:
    """One function per field: the value as the database takes it. Plain values (and None) skip Django's
    conversion chain, which costs more than the database's work when a statement chunk writes thousands of rows."""
    out = []
    for field in fields:
        prep = functools.partial(field.get_db_prep_save, connection=connection)
        plain = _plain_type(field)
        out.append(_last_remembered(prep) if plain is None else _passing(plain, prep))
    return out


def _passing(plain, prep):
    def convert(value):
        return value if value is None or type(value) is plain else prep(value)

    return convert


def _last_remembered(prep):
    """`prep`, converting a value once when the same object comes again (the call's one timestamp)."""
    last = [_NOTHING, None]

    def convert(value):
        if value is not last[0]:
            last[0], last[1] = value, prep(value)
        return last[1]

    return convert


_NOTHING = object()


def rows_update(objs: list, fields: list[str]) -> int:
    """Write `fields` of the model instances `objs` (all of one model, saved before). Returns how many rows the
    database updated."""
    if not objs:
        return 0
    connection = connections[router.db_for_write(type(objs[0]))]
    updated = 0
    with connection.cursor() as cursor:
        for sql, params in _update_statements(objs, fields, connection):
            cursor.execute(sql, params)
            updated += cursor.rowcount
    return updated


def _update_statements(objs: list, fields: list[str], connection) -> list[tuple[str, list]]:
    """`rows_update`'s statements (one on PostgreSQL), with the `auto_now` fields stamped on the instances."""
    meta = type(objs[0])._meta
    targets = [meta.get_field(name) for name in fields]
    now = timezone.now()
    for field in targets:
        if getattr(field, "auto_now", False):
            for obj in objs:
                setattr(obj, field.attname, now)
    columns = [meta.pk, *targets]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    assignments = ", ".join(f"{quote(field.column)} = v.column{i}" for i, field in enumerate(targets, start=2))
    where = f"WHERE {table}.{quote(meta.pk.column)} = v.column1"
    rows = _values(objs, columns, connection)
    if connection.vendor == "postgresql":
        names = ", ".join(f"column{i}" for i in range(1, len(columns) + 1))
        sql = f"UPDATE {table} SET {assignments} FROM {_unnest(columns, connection)} AS v ({names}) {where}"
        return [(sql, _by_column(rows, len(columns)))]
    return [
        (f"UPDATE {table} SET {assignments} FROM ({_values_list(batch, len(columns))}) AS v {where}",
         [value for row in batch for value in row])
        for batch in _batches(rows, len(columns))
    ]  # fmt: skip


def rows_insert(objs: list, *, ignore_conflicts: bool = False) -> int:
    """INSERT the new model instances `objs` (all of one model, with a database-made primary key) without reading
    their ids back; with `ignore_conflicts`, a row that breaks a unique constraint is skipped (ON CONFLICT DO
    NOTHING), as `bulk_create(ignore_conflicts=True)` does. `auto_now`/`auto_now_add` fields get one timestamp for
    the call. No signals, as with `bulk_create`. Returns how many rows the database inserted."""
    if not objs:
        return 0
    connection = connections[router.db_for_write(type(objs[0]))]
    inserted = 0
    with connection.cursor() as cursor:
        for sql, params in _insert_statements(objs, connection, ignore_conflicts=ignore_conflicts):
            cursor.execute(sql, params)
            inserted += cursor.rowcount
    return inserted


def _insert_statements(objs: list, connection, *, ignore_conflicts: bool = False, returning: bool = False):
    """`rows_insert`'s statements (one on PostgreSQL), with the timestamps stamped on the instances; `returning`
    (PostgreSQL only) adds `RETURNING <pk>`."""
    meta = type(objs[0])._meta
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    now = timezone.now()
    stamped = [f.attname for f in columns if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="rows_insert")  # a related row saved since
        for attname in stamped:
            setattr(obj, attname, now)
        obj._state.adding = False
    rows = _values(objs, columns, connection)
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if connection.vendor == "postgresql":
        tail += f" RETURNING {quote(meta.pk.column)}" if returning else ""
        return [(f"{head}SELECT * FROM {_unnest(columns, connection)}{tail}", _by_column(rows, len(columns)))]
    return [
        (f"{head}{_values_list(batch, len(columns))}{tail}", [value for row in batch for value in row])
        for batch in _batches(rows, len(columns))
    ]


class WriteBatch:
    """Writes that do not depend on each other, sent together when `run` is called: on PostgreSQL as one statement
    (each write a data-modifying `WITH` part: PostgreSQL runs every part, once and to completion, in the same
    transaction and under the same constraints as separate statements), elsewhere one statement each, in order.

    For a caller that writes several small rows at the end of a step (a status, its history row, an attempt's
    outcome): each is a round trip and a statement compiled by the ORM otherwise. The parts share one snapshot, so
    they must be independent: no part may read what another writes, nor two parts write one row. Rows whose ids
    the caller needs (`insert(…, ids=True)`) get them when the batch runs."""

    def __init__(self, using: str = "default"):
        self.connection = connections[using]
        self._writes: list[tuple[str, list, bool]] = []  # (kind, objs, fields or ids)

    def __bool__(self) -> bool:
        return bool(self._writes)

    def update(self, objs: list, fields: list[str]) -> None:
        """Write `fields` of saved instances (`rows_update`; `auto_now` fields listed are stamped)."""
        if objs:
            self._writes.append(("update", list(objs), list(fields)))

    def insert(self, objs: list, *, ids: bool = False) -> None:
        """Insert new instances (`rows_insert`); with `ids`, their primary keys are set when the batch runs."""
        if objs:
            self._writes.append(("insert", list(objs), ids))

    def run(self) -> None:
        writes, self._writes = self._writes, []
        if not writes:
            return
        connection = self.connection
        if connection.vendor != "postgresql":
            for kind, objs, arg in writes:
                if kind == "update":
                    rows_update(objs, arg)
                elif arg:
                    type(objs[0]).objects.using(connection.alias).bulk_create(objs)
                else:
                    rows_insert(objs)
            return
        parts, params, returning = [], [], []
        for n, (kind, objs, arg) in enumerate(writes):
            if kind == "update":
                ((sql, values),) = _update_statements(objs, arg, connection)
            else:
                ((sql, values),) = _insert_statements(objs, connection, returning=arg)
                if arg:
                    returning.append((n, objs))
            parts.append(f"w{n} AS ({sql})")
            params.extend(values)
        if returning:
            quote = connection.ops.quote_name
            select = " UNION ALL ".join(
                f"SELECT {n}, {quote(type(objs[0])._meta.pk.column)} FROM w{n}" for n, objs in returning
            )
        else:
            select = "SELECT 1"
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(parts)} {select}", params)
            rows = cursor.fetchall() if returning else ()
        made: dict[int, list] = {}
        for n, pk in rows:
            made.setdefault(n, []).append(pk)
        for n, objs in returning:
            # One INSERT takes its ids from the sequence in row order: ascending ids are the rows in order.
            pks = sorted(made.get(n, []))
            if len(pks) != len(objs):
                raise RuntimeError(f"WriteBatch: {len(objs)} rows inserted, {len(pks)} ids returned")
            for obj, pk in zip(objs, pks):
                obj.pk = pk
                obj._state.db = connection.alias


def _values(objs: list, columns: list, connection) -> list[list]:
    attnames = [field.attname for field in columns]
    convert = _converters(columns, connection)
    return [[to_db(getattr(obj, attname)) for attname, to_db in zip(attnames, convert)] for obj in objs]


# PostgreSQL: one array per column (UNNEST), as Django's bulk_create does there: psycopg reads a statement's
# placeholders one by one, which is slow with thousands of them.
def _unnest(columns: list, connection) -> str:
    return "UNNEST(" + ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in columns) + ")"


def _by_column(rows: list[list], width: int) -> list[list]:
    return [[row[i] for row in rows] for i in range(width)] if rows else [[] for _ in range(width)]


# SQLite: a VALUES list, split to stay under its limit on parameters a statement.
def _values_list(batch: list[list], width: int) -> str:
    one = "(" + ", ".join(["%s"] * width) + ")"
    return "VALUES " + ", ".join([one] * len(batch))


def _batches(rows: list[list], width: int):
    per_statement = max(1, _MAX_PARAMS // width)
    for start in range(0, len(rows), per_statement):
        yield rows[start : start + per_statement]
