"""Writing many rows in one statement, where Django's bulk methods cost more than the database's work: the statement
matcher writes about nine rows a line (payment, allocation, history, credit, the bill, the line's outcome), and its
speed is measured against one bare `bulk_create` a line (docs/performance.md).

`rows_insert` is `bulk_create` for append-only rows whose ids the caller does not need back (history, allocations,
credit entries, statement lines): the same values (each field's `get_db_prep_save`), sent in one statement without
the compiler's per-value expression handling, which was most of the cost. `rows_create` is the same for rows whose
ids the caller needs (payments).

`bulk_update` builds a `CASE WHEN pk = … THEN …` per row and per field, and resolving those expressions costs more
than the database's work (a statement chunk of 200 lines spent most of its time there). `rows_update` sends the rows
as one table instead, joined on the primary key. Callers hold the rows' locks: this writes what the instances say,
like `save(update_fields=…)` would, `auto_now` fields included.

How the rows travel:
- PostgreSQL, a plain insert: `COPY t (…) FROM STDIN` (psycopg formats the rows in C); `rows_create` first takes
  the ids from the key's sequence (`nextval`, one query) and copies them with the rows.
- PostgreSQL, an update or an insert … ON CONFLICT DO NOTHING: the rows as one JSON document that the server reads
  with the table's own row type, `json_populate_recordset(NULL::t, %s)`; quoting typed arrays for UNNEST value by
  value in Python had been a quarter of the matcher's time.
- SQLite: `INSERT … VALUES (…), (…)` and `UPDATE t SET a = v.column2 FROM (VALUES (…), …) AS v WHERE t.id =
  v.column1` (SQLite 3.33 and later), split to stay under its limit on parameters a statement.

`WriteBatch` queues such inserts and updates and sends them together: on PostgreSQL as the data-modifying `WITH`
parts of one statement (each part reads its rows from JSON as above; a round trip and a statement each was most of a
small step's cost: an autopay charge went from 21 statements to 11), elsewhere one statement each, in order. The
parts must not depend on each other.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import operator
import uuid
from contextlib import nullcontext

from django.db import connections, models, router
from django.db.models import signals
from django.db.models.base import ModelState
from django.utils import timezone

try:
    from psycopg.types.json import Jsonb
except ImportError:  # SQLite only: no JSON is sent that way
    Jsonb = type("Jsonb", (), {})

# SQLite since 3.32 allows 32,766 parameters a statement (Django assumes the old 999 for its own bulk methods).
_MAX_PARAMS = 30_000


def plain_type(field):
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


_NOTHING = object()


def row_new(model, **values):
    """`model(**values)` for a row that `rows_insert`/`rows_create` will write (thousands a statement chunk): the
    same instance, built without the constructor's look-up of every keyword against every field (most of the cost
    of a history row) when no pre_init/post_init receiver listens to the model. Fields are given by name or by
    attname (`bill_id`); a related object given by name is set as the relation too (its id on the row, itself in
    the cache). Fields not given get their defaults, as with keywords."""
    template, callables, relations = _plan(model)
    row = template.copy()
    for attname, default in callables:
        row[attname] = default()
    related = None
    if values.keys() <= row.keys():  # every field given by attname (history rows): one C-level update
        row.update(values)
    else:
        for key, value in values.items():
            if key in row:
                row[key] = value
            elif key in relations:  # a relation given as the object
                row[relations[key]] = None if value is None else value.pk
                related = related or []
                related.append((key, value))
            else:
                raise TypeError(f"{model.__name__} has no field {key}")
    if _signals_on(model):
        obj = model(**row)
    else:  # what the constructor does when no init signal listens: a fresh state, then the fields' values
        obj = model.__new__(model)
        obj._state = ModelState()
        obj.__dict__.update(row)
    for name, value in related or ():
        setattr(obj, name, value)
    return obj


def rows_read(queryset, fields=None) -> list:
    """`list(queryset.only(*fields))` (every field when None) for a read of thousands of rows (a statement chunk's
    lines, accounts, bills): the same instances, built from the rows' values without the constructor's
    descriptor work for each field (most of the cost of a row), when no pre_init/post_init receiver listens to the
    model. Fields not read are deferred, loaded on first use, as with `only`. The queryset's filters, order, slices
    and locks (`select_for_update`) apply as they are."""
    model = queryset.model
    meta = model._meta
    if fields is None:
        attnames = [field.attname for field in meta.concrete_fields]
    else:
        attnames = [meta.pk.attname, *(meta.get_field(name).attname for name in fields if name != meta.pk.name)]
    if _signals_on(model):
        return list(queryset.only(*attnames))
    rows = queryset.values_list(*attnames)
    alias = rows.db
    objs = []
    for values in rows:
        obj = model.__new__(model)
        state = obj._state = ModelState()
        state.adding, state.db = False, alias
        obj.__dict__.update(zip(attnames, values))
        objs.append(obj)
    return objs


def _signals_on(model) -> bool:
    if not (signals.pre_init.receivers or signals.post_init.receivers):
        return False
    return signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)


@functools.cache
def _plan(model) -> tuple[dict, list, dict]:
    """The model's fields for `row_new`: {attname: default} (constant defaults), [(attname, callable default)], and
    {name: attname} of its relations."""
    template, callables, relations = {}, [], {}
    for field in model._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            callables.append((field.attname, field.default))
            template[field.attname] = None
        else:
            template[field.attname] = field.get_default()
        if field.attname != field.name:
            relations[field.name] = field.attname
    return template, callables, relations


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
    rows = _values(objs, columns, connection)
    if connection.vendor == "postgresql":
        pk = quote(meta.pk.column)
        sets = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in targets)
        sql = (
            f"UPDATE {table} SET {sets} FROM json_populate_recordset(NULL::{table}, %s::json) AS v "
            f"WHERE {table}.{pk} = v.{pk}"
        )
        return [(sql, [_json(rows, columns)])]
    assignments = ", ".join(f"{quote(field.column)} = v.column{i}" for i, field in enumerate(targets, start=2))
    where = f"WHERE {table}.{quote(meta.pk.column)} = v.column1"
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
    meta = type(objs[0])._meta
    connection = connections[router.db_for_write(type(objs[0]))]
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    return _rows_write(objs, columns, connection, ignore_conflicts=ignore_conflicts)


def _rows_write(
    objs: list, columns: list, connection, *, ignore_conflicts: bool = False, ids: list | None = None
) -> int:
    """INSERT the objects' `columns`; returns how many rows went in. `ids` (SQLite): a list that receives the new
    rows' primary keys, in the objects' order (RETURNING, as Django's bulk_create reads them there)."""
    meta = type(objs[0])._meta
    rows = _rows_prepare(objs, columns, connection)
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = ", ".join(quote(field.column) for field in columns)
    head = f"INSERT INTO {table} ({names}) "
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if not ignore_conflicts:
                return _copy_in(cursor, f"COPY {table} ({names}) FROM STDIN", rows)
            cursor.execute(f"{head}SELECT {names} FROM json_populate_recordset(NULL::{table}, %s::json){tail}",
                           [_json(rows, columns)])  # fmt: skip
            return cursor.rowcount
        inserted = 0
        returning = f" RETURNING {quote(meta.pk.column)}" if ids is not None else ""
        for batch in _batches(rows, len(columns)):
            params = [value for row in batch for value in row]
            cursor.execute(f"{head}{_values_list(batch, len(columns))}{tail}{returning}", params)
            if ids is not None:
                ids.extend(row[0] for row in cursor.fetchall())
            inserted += cursor.rowcount
        return inserted


def _rows_prepare(objs: list, columns: list, connection) -> list[list]:
    """New rows about to be inserted: related objects checked, `auto_now`/`auto_now_add` stamped with one timestamp,
    marked as saved; their values of `columns` as the database takes them."""
    now = timezone.now()
    stamped = [f.attname for f in columns if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for obj in objs:
        if obj._state.fields_cache:  # a related object given: its row saved since (else there is nothing to check)
            obj._prepare_related_fields_for_save(operation_name="rows_insert")
        for attname in stamped:
            setattr(obj, attname, now)
        obj._state.adding = False
    return _values(objs, columns, connection)


def _pg_insert_statement(objs: list, connection, *, returning: bool) -> tuple[str, list]:
    """PostgreSQL: INSERT the new instances' rows read from one JSON document (a `WriteBatch` part), with
    `RETURNING <pk>` when asked; the timestamps stamped as `rows_insert` does."""
    meta = type(objs[0])._meta
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    rows = _rows_prepare(objs, columns, connection)
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = ", ".join(quote(field.column) for field in columns)
    sql = f"INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table}, %s::json)"
    return sql + (f" RETURNING {quote(meta.pk.column)}" if returning else ""), [_json(rows, columns)]


class WriteBatch:
    """Writes that do not depend on each other, sent together when `run` is called: on PostgreSQL as one statement
    (each write a data-modifying `WITH` part: PostgreSQL runs every part, once and to completion, in the same
    transaction and under the same constraints as separate statements), elsewhere one statement each, in order.

    For a caller that writes several small rows at the end of a step (a status, its history row, an attempt's
    outcome): each is a round trip and a statement compiled by the ORM otherwise. The parts share one snapshot, so
    they must be independent: no part may read what another writes, nor two parts write one row. Rows whose ids
    the caller needs (`insert(…, ids=True)`) get them when the batch runs. `copy_inserts`: inserts whose ids are not
    needed go each as a statement of its own (`rows_insert`: COPY on PostgreSQL), for callers that write thousands of
    rows at once (a statement chunk), where COPY beats JSON in the statement."""

    def __init__(self, using: str = "default", *, copy_inserts: bool = False):
        self.connection = connections[using]
        self.copy_inserts = copy_inserts
        self._writes: list[tuple[str, list, bool]] = []  # (kind, objs, fields or ids)

    def __bool__(self) -> bool:
        return bool(self._writes)

    def update(self, objs: list, fields: list[str]) -> None:
        """Write `fields` of saved instances (`rows_update`; `auto_now` fields listed are stamped). Joins an update of
        the same model and fields queued before (an instance queued twice is written once, as it is when the batch
        runs); two instances of one row in it raise ValueError: one of them would be lost."""
        if objs:
            self._add("update", objs, list(fields))

    def insert(self, objs: list, *, ids: bool = False) -> None:
        """Insert new instances (`rows_insert`); with `ids`, their primary keys are set when the batch runs. Joins an
        insert of the same model queued before, in order."""
        if objs:
            self._add("insert", objs, ids)

    def _add(self, kind: str, objs: list, arg) -> None:
        # One part per model and kind, however many callers queue rows: a batch of many small steps (a batch of
        # autopay charges) sends a few parts, not a few per step.
        model = type(objs[0])
        part = next((w for w in self._writes if w[0] == kind and type(w[1][0]) is model and w[2] == arg), None)
        if part is None:
            part = (kind, [], arg)
            self._writes.append(part)
        queued = part[1]
        if kind == "update":
            seen = {id(obj) for obj in queued}
            pks = {obj.pk for obj in queued}
            for obj in objs:
                if id(obj) in seen:
                    continue
                if obj.pk in pks:
                    raise ValueError(f"WriteBatch: two instances of {model.__name__} {obj.pk} in one update")
                seen.add(id(obj))
                pks.add(obj.pk)
                queued.append(obj)
        else:
            queued.extend(objs)

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
        by_copy = [self.copy_inserts and kind == "insert" and not arg for kind, objs, arg in writes]
        for (_kind, objs, _arg), copy in zip(writes, by_copy):
            if copy:
                rows_insert(objs)
        writes = [write for write, copy in zip(writes, by_copy) if not copy]
        if not writes:
            return
        parts, params, returning = [], [], []
        for n, (kind, objs, arg) in enumerate(writes):
            if kind == "update":
                ((sql, values),) = _update_statements(objs, arg, connection)
            else:
                sql, values = _pg_insert_statement(objs, connection, returning=arg)
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


def rows_create(objs: list) -> list:
    """`bulk_create` of new model instances `objs` (all of one model, with a database-made primary key) whose ids the
    caller needs (payments: their allocations and history name them). On PostgreSQL the ids are taken from the
    key's sequence first (one query), then the rows go in by COPY with them; on SQLite the INSERT returns them
    (RETURNING, in the rows' order, as Django's bulk_create reads them there), in one statement per 30,000 values
    where bulk_create took one per 999. A unique column's conflict raises IntegrityError either way. No signals,
    as with `bulk_create`."""
    if not objs:
        return objs
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    if connection.vendor != "postgresql":
        if not connection.features.can_return_rows_from_bulk_insert:
            return model._default_manager.bulk_create(objs)
        ids: list = []
        _rows_write(objs, fields, connection, ids=ids)
        for obj, pk in zip(objs, ids, strict=True):
            obj.pk = pk
            obj._state.db = connection.alias
        return objs
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(objs)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids):
        obj.pk = pk
        obj._state.db = connection.alias
    _rows_write(objs, [meta.pk, *fields], connection)
    return objs


def _copy_in(cursor, sql: str, rows: list[list]) -> int:
    """PostgreSQL: send `rows` through `COPY … FROM STDIN` (psycopg formats each row in C), as one statement that
    Django's execute wrappers and query log see like any other."""

    def copy(sql, rows, _many, context):
        context["connection"].validate_no_broken_transaction()
        with context["connection"].wrap_database_errors:
            with cursor.cursor.copy(sql) as stream:
                for row in rows:
                    stream.write_row(row)
            return cursor.cursor.rowcount

    debug = getattr(cursor, "debug_sql", None)
    with debug(sql) if debug else nullcontext():
        return cursor._execute_with_wrappers(sql, rows, False, copy)


def _values(objs: list, columns: list, connection) -> list[list]:
    """Each object's values of `columns` as the database takes them. A column whose values are all of its field's
    plain type (str, int, bool; see `plain_type`) or None is sent as it is (a TextChoices member is a str: Django
    sends it as it is too); in any other column each value goes through the field's `get_db_prep_save` (the same
    object converted once: the call's one timestamp). Column by column rather than a function per value: a chunk
    sends about a hundred thousand values."""
    attnames = [field.attname for field in columns]
    try:
        # From each instance's __dict__ in C: a foreign key's attname is a descriptor read in Python otherwise.
        get = operator.itemgetter(*attnames)
        rows = [list(get(obj.__dict__)) for obj in objs] if len(columns) > 1 else [[get(obj.__dict__)] for obj in objs]
    except KeyError:  # a deferred field not loaded: read through the attribute, which loads it, as before
        get = operator.attrgetter(*attnames)
        rows = [list(get(obj)) for obj in objs] if len(columns) > 1 else [[get(obj)] for obj in objs]
    for i, field in enumerate(columns):
        plain = plain_type(field)
        kinds = set(map(type, map(operator.itemgetter(i), rows))) - {plain, type(None)}  # in C
        if not kinds or (plain is str and all(issubclass(kind, str) for kind in kinds)):
            continue
        prep = functools.partial(field.get_db_prep_save, connection=connection)
        last_in, last_out = _NOTHING, None
        for row in rows:
            value = row[i]
            if value is None or type(value) is plain or (plain is str and isinstance(value, str)):
                continue
            if value is not last_in:
                last_in, last_out = value, prep(value)
            row[i] = last_out
    return rows


# PostgreSQL: rows that an UPDATE joins on, or that an INSERT … ON CONFLICT reads, go as one JSON document read by
# json_populate_recordset with the table's own row type (each value cast to its column's type by the server). Building
# it is one C call (json.dumps); the arrays of UNNEST were quoted value by value in Python, a quarter of the time.
def _json(rows: list[list], columns: list) -> str:
    names = [field.column for field in columns]
    for i, field in enumerate(columns):
        if isinstance(field, (models.DateField, models.TimeField)):  # DateTimeField too
            # As `_json_value` writes them, column by column: a chunk's timestamps are one object, each str()'d once.
            last_in, last_out = _NOTHING, None
            for row in rows:
                value = row[i]
                if value is None or value.__class__ is str:
                    continue
                if value is not last_in:
                    last_in, last_out = value, str(value)
                row[i] = last_out
    return json.dumps([dict(zip(names, row)) for row in rows], default=_json_value, separators=(",", ":"))


def _json_value(value):
    """What json.dumps cannot write itself: timestamps and dates (PostgreSQL reads their str()), decimals, UUIDs,
    and a JSONField's value (psycopg's Jsonb wrapper), which goes as nested JSON."""
    if isinstance(value, Jsonb):
        return value.obj
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, decimal.Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"rows_update/rows_insert cannot send a {type(value).__name__} to PostgreSQL as JSON")


# SQLite: a VALUES list, split to stay under its limit on parameters a statement.
def _values_list(batch: list[list], width: int) -> str:
    one = "(" + ", ".join(["%s"] * width) + ")"
    return "VALUES " + ", ".join([one] * len(batch))


def _batches(rows: list[list], width: int):
    per_statement = max(1, _MAX_PARAMS // width)
    for start in range(0, len(rows), per_statement):
        yield rows[start : start + per_statement]
