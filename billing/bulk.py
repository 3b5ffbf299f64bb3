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
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
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
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(f"column{i}" for i in range(1, len(columns) + 1))
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM {_unnest(columns, connection)} AS v ({names}) {where}",
                _by_column(rows, len(columns)),
            )
            return cursor.rowcount
        updated = 0
        for batch in _batches(rows, len(columns)):
            cursor.execute(f"UPDATE {table} SET {assignments} FROM ({_values_list(batch, len(columns))}) AS v {where}",
                           [value for row in batch for value in row])  # fmt: skip
            updated += cursor.rowcount
        return updated


def rows_insert(objs: list, *, ignore_conflicts: bool = False) -> int:
    """INSERT the new model instances `objs` (all of one model, with a database-made primary key) without reading
    their ids back; with `ignore_conflicts`, a row that breaks a unique constraint is skipped (ON CONFLICT DO
    NOTHING), as `bulk_create(ignore_conflicts=True)` does. `auto_now`/`auto_now_add` fields get one timestamp for
    the call. No signals, as with `bulk_create`. Returns how many rows the database inserted."""
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
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
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"{head}SELECT * FROM {_unnest(columns, connection)}{tail}", _by_column(rows, len(columns)))
            return cursor.rowcount
        inserted = 0
        for batch in _batches(rows, len(columns)):
            params = [value for row in batch for value in row]
            cursor.execute(f"{head}{_values_list(batch, len(columns))}{tail}", params)
            inserted += cursor.rowcount
        return inserted


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
