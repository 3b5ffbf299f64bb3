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

PostgreSQL and SQLite (3.33 and later) both read `UPDATE … FROM`, and both name a VALUES list's columns column1,
column2, … On PostgreSQL every value is cast to its column's type, since a parameter alone has none. Callers hold the
rows' locks: this writes what the instances say, like `save(update_fields=…)` would, `auto_now` fields included.
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
    """Write `fields` of the model instances `objs` (all of one model, saved before), one statement per 30,000
    values. Returns how many rows the database updated."""
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
    if connection.vendor == "postgresql":
        one = "(" + ", ".join(f"CAST(%s AS {field.db_type(connection)})" for field in columns) + ")"
    else:
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    assignments = ", ".join(f"{quote(field.column)} = v.column{i}" for i, field in enumerate(targets, start=2))
    table = quote(meta.db_table)
    attnames = [field.attname for field in columns]
    convert = _converters(columns, connection)
    per_statement = max(1, _MAX_PARAMS // len(columns))
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_statement):
            batch = objs[start : start + per_statement]
            params = [
                to_db(getattr(obj, attname)) for obj in batch for attname, to_db in zip(attnames, convert)
            ]
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([one] * len(batch))}) AS v "
                f"WHERE {table}.{quote(meta.pk.column)} = v.column1",
                params,
            )
            updated += cursor.rowcount
    return updated


def rows_insert(objs: list, *, ignore_conflicts: bool = False) -> int:
    """INSERT the new model instances `objs` (all of one model, with a database-made primary key) without reading
    their ids back, one statement per 30,000 values; with `ignore_conflicts`, a row that breaks a unique constraint
    is skipped (ON CONFLICT DO NOTHING), as `bulk_create(ignore_conflicts=True)` does. `auto_now`/`auto_now_add`
    fields get one timestamp for the call. No signals, as with `bulk_create`. Returns how many rows the database
    inserted."""
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    now = timezone.now()
    stamped = [f.attname for f in columns if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    attnames = [field.attname for field in columns]
    convert = _converters(columns, connection)
    quote = connection.ops.quote_name
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) VALUES "
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    per_statement = max(1, _MAX_PARAMS // len(columns))
    inserted = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_statement):
            batch = objs[start : start + per_statement]
            params = []
            for obj in batch:
                obj._prepare_related_fields_for_save(operation_name="rows_insert")  # a related row saved since
                for attname in stamped:
                    setattr(obj, attname, now)
                params.extend(to_db(getattr(obj, attname)) for attname, to_db in zip(attnames, convert))
                obj._state.adding = False
            cursor.execute(head + ", ".join([one] * len(batch)) + tail, params)
            inserted += cursor.rowcount
    return inserted
