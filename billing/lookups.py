"""Two ways to write `__in`, registered on every field in BillingConfig.ready().

`field__any_of=[…]`: the rows whose field is one of the values, as `__in` selects them. On PostgreSQL the values go
as one array parameter (`field = ANY(%s)`), where `__in` sends one placeholder a value: a statement chunk's queries
name 500 ids or keys each, and Django preparing, psycopg splitting and quoting and the server parsing 500 placeholders
cost more than the array. Elsewhere it is `__in`.

`field__in_constants=(…)`: `__in` with a short fixed set of plain words (a model's statuses) written into the statement
as literals instead of parameters. A prepared statement's generic plan (the page cache's digest, billing/pagecache.py)
cannot see parameters' values, so it can use neither a partial index built on those statuses nor their statistics:
the dashboard's balances read every bill of an account's history to find its open ones. With the statuses in the text
it reads only the open bills, from an index (their partial index, or the account-and-status one). Anything but letters, digits, `_` and `-` is refused (ValueError),
so nothing can be injected.
"""

from __future__ import annotations

import re

from django.core.exceptions import EmptyResultSet
from django.db.models.lookups import In

from .bulk import plain_type


class AnyOf(In):
    lookup_name = "any_of"

    def get_prep_lookup(self):
        if not isinstance(self.rhs, (list, tuple, set, frozenset)):
            return super().get_prep_lookup()
        values = list(dict.fromkeys(value for value in self.rhs if value is not None))
        plain = plain_type(self.lhs.output_field)
        if plain is not None and all(type(value) is plain for value in values):
            return values  # as they would be prepared: skip a call a value
        return [self.lhs.output_field.get_prep_value(value) for value in values]

    def as_postgresql(self, compiler, connection):
        if not isinstance(self.rhs, list):
            return self.as_sql(compiler, connection)
        if not self.rhs:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        plain = plain_type(field)
        values = self.rhs if plain is not None and all(type(v) is plain for v in self.rhs) else [
            field.get_db_prep_value(value, connection, prepared=True) for value in self.rhs
        ]  # fmt: skip
        # Typed as the column is: an untyped list of ints would go as numeric[], which no index on a bigint serves.
        return f"{lhs} = ANY(%s::{field.cast_db_type(connection)}[])", (*lhs_params, values)


_CONSTANT = re.compile(r"[A-Za-z0-9_-]+")


class InConstants(In):
    lookup_name = "in_constants"

    def get_prep_lookup(self):
        values = [self.lhs.output_field.get_prep_value(value) for value in self.rhs]
        for value in values:
            if not isinstance(value, str) or not _CONSTANT.fullmatch(value):
                raise ValueError(f"__in_constants takes plain words only, not {value!r}")
        return list(dict.fromkeys(str(value) for value in values))  # a choice's value, not its enum member

    def as_sql(self, compiler, connection):
        if not self.rhs:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        words = ", ".join(f"'{value}'" for value in self.rhs)
        return f"{lhs} IN ({words})", tuple(lhs_params)
