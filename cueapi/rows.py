"""Hand-written SQL for the hot paths: the statements every API request and every engine
batch runs.

Compiling an ORM query costs Django about as much CPU as PostgreSQL spends running a simple
indexed one (more for wide rows: each column is an expression to compile), and the hot paths
ask the same question thousands of times a second. There the SQL is written once, as a
string, and its rows become model instances here, with the same conversions the ORM applies
to each column (SQLite's text datetimes and UUIDs, JSON), so the instances are the ones a
queryset would return. Values go in through the backend's adapters (SQLite's UUIDs as hex,
datetimes as naive UTC text), so one statement runs on PostgreSQL and SQLite alike.
"""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import CASCADE, DO_NOTHING, Model, signals
from django.db.models.base import ModelState
from django.db.models.deletion import get_candidate_relations_to_delete
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def in_list(values) -> str:
    """`(%s, %s, ...)`: an IN list's placeholders, one per value (SQLite has no arrays)."""
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def fetch(sql: str, params) -> list[tuple]:
    """The rows of one hand-written statement (a SELECT, or a write with RETURNING)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute_together(*statements: tuple[str, list], savepoint: bool = True) -> None:
    """Run writes (sql, params) that stand or fall together and don't read each other's rows.
    On PostgreSQL they go as one statement, each but the last a data-modifying WITH: atomic by
    itself, so outside a transaction there is no BEGIN or COMMIT to wait for. Inside one they
    run under a savepoint (unless `savepoint=False`), as transaction.atomic() would, so an
    IntegrityError leaves the caller's transaction usable. On SQLite, in transaction.atomic()."""
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=savepoint):
            for sql, params in statements:
                execute(sql, params)
        return
    *first, (last_sql, _) = statements
    sql = "".join(f"{'WITH' if i == 0 else ','} together_{i} AS ({each}) " for i, (each, _) in enumerate(first))
    params = [param for _, each in statements for param in each]
    if connection.in_atomic_block and savepoint:
        with transaction.atomic():
            execute(sql + last_sql, params)
    else:
        execute(sql + last_sql, params)


GUARDED = "{guarded}"


def execute_guarded(guarded: tuple[str, list], *then: tuple[str, list]) -> int:
    """Run the write `guarded` (an UPDATE whose WHERE carries its guard) and, only if it
    changed a row, the writes `then`, which stand or fall with it. Each of `then` says where
    by GUARDED, a condition that holds when the guard did (`INSERT ... SELECT ... WHERE
    {guarded}`, `UPDATE ... WHERE id = %s AND {guarded}`); no two of them may write the same
    row (PostgreSQL applies only one of them). On PostgreSQL one statement, the
    guarded write a data-modifying WITH that the others test; on SQLite in transaction.atomic().
    Returns the number of rows `guarded` changed (the guard's verdict)."""
    for sql, _ in then:
        if GUARDED not in sql:
            raise ValueError(f"a guarded write must say where the guard applies ({GUARDED}): {sql}")
    if not then:
        return execute(*guarded)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            changed = execute(*guarded)
            if changed:
                for sql, params in then:
                    execute(sql.replace(GUARDED, "1 = 1"), params)
        return changed
    condition = "EXISTS (SELECT 1 FROM guarded)"
    sql = f"WITH guarded AS ({guarded[0]} RETURNING 1)" + "".join(
        f", then_{i} AS ({each.replace(GUARDED, condition)})" for i, (each, _) in enumerate(then))
    params = [*guarded[1], *(param for _, each in then for param in each)]
    return fetch(sql + " SELECT count(*) FROM guarded", params)[0][0]


def fetch_page(columns: str, matching: str, params, *, aggregates: list[str], order_by: str,
               limit: int, offset: int) -> tuple[list[tuple], tuple]:
    """A page of `SELECT {columns} {matching}` and the `aggregates` (e.g. COUNT(*)) over all its
    matching rows, in one statement: each aggregate rides on every page row as an uncorrelated
    subquery, which the database computes once. Returns (page rows, aggregate values); only an
    empty page costs a second statement."""
    subqueries = [f"(SELECT {aggregate} {matching})" for aggregate in aggregates]
    rows = fetch(f"SELECT {', '.join(subqueries)}, {columns} {matching} ORDER BY {order_by} LIMIT %s OFFSET %s",
                 [*params * len(aggregates), *params, limit, offset])
    if not rows:
        return [], fetch(f"SELECT {', '.join(aggregates)} {matching}", params)[0]
    return [row[len(aggregates):] for row in rows], rows[0][:len(aggregates)]


def execute(sql: str, params) -> int:
    """Run one hand-written write; return how many rows it changed (the guard's verdict)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def db_time(moment: datetime | None):
    """A datetime as the database compares it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(moment)


def from_db_time(value) -> datetime | None:
    """A datetime read by hand-written SQL, aware (SQLite answers an aggregate with text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


def db_id(model: type[Model], field: str, value):
    """`value` as the database takes it for `model`'s field `field`, as the ORM would pass it
    (SQLite: a UUID as 32 hex digits, a datetime as naive UTC text)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def sql_by_id(values: dict, column: str = "id") -> tuple[str, list]:
    """An UPDATE's value for a column that may differ by row: (SQL, parameters), one
    placeholder when every row gets the same value, else a CASE on `column` (`values`: the
    row's id as the database stores it -> value)."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return "%s", [distinct.pop()]
    params = []
    for row_id, value in values.items():
        params += [row_id, value]
    return f"CASE {column} " + "WHEN %s THEN %s " * len(values) + "END", params


class RowLoader:
    """Loads one model's concrete columns, selected by `columns(alias)`, from a row."""

    def __init__(self, model):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self._converters = None
        self._columns = {}
        self._inserts = {}
        self._plain_init = None

    def columns(self, alias):
        """The select list, `alias.column` for each concrete field in model order."""
        if alias not in self._columns:
            quote = connection.ops.quote_name
            self._columns[alias] = ", ".join(f"{alias}.{quote(field.column)}" for field in self.fields)
        return self._columns[alias]

    def __len__(self):
        return len(self.fields)

    def converters(self):
        """(index, field, converters) for the columns whose database value needs converting;
        computed once per process (a process talks to one database)."""
        if self._converters is None:
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.model._meta.db_table)
                functions = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
                if functions:
                    found.append((index, column, functions))
            self._converters = found
        return self._converters

    def param(self, name, value):
        """`value` as the database takes it for field `name` (a UUID as SQLite's hex text, a
        datetime as its text), as the ORM would pass it."""
        return db_id(self.model, name, value)

    def insert(self, instance, names=None):
        """INSERT `instance` (its fields `names`, default all), as save(force_insert=True) does
        for a model with no save signals or overrides: auto_now fields are set, defaults are
        already on the instance, and nothing is read back (the primary key must be set, or be
        the table's own, e.g. an audit entry's serial)."""
        execute(*self.insert_statement(instance, names))

    def insert_statement(self, instance, names=None, *, guarded=False) -> tuple[str, list]:
        """insert()'s INSERT as (sql, params), to run with other writes (execute_together; with
        `guarded`, as one of execute_guarded's). The instance counts as saved from here on: run
        the statement."""
        fields = self.fields if names is None else [self.model._meta.get_field(name) for name in names]
        key = (tuple(field.attname for field in fields), guarded)
        if key not in self._inserts:
            quote = connection.ops.quote_name
            values = (f"SELECT {', '.join(['%s'] * len(fields))} WHERE {GUARDED}" if guarded
                      else f"VALUES {in_list(fields)}")
            self._inserts[key] = (f"INSERT INTO {quote(self.model._meta.db_table)} "
                                  f"({', '.join(quote(field.column) for field in fields)}) {values}")
        params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
        instance._state.adding = False
        instance._state.db = connection.alias
        return self._inserts[key], params

    def update(self, pk, values, *, guard=""):
        """UPDATE row `pk` to `values` (field name -> plain value) if `guard`, a condition on
        its columns, also holds; return the number of rows changed (0 or 1)."""
        return execute(*self.update_statement(pk, values, guard=guard))

    def update_statement(self, pk, values, *, guard="") -> tuple[str, list]:
        """update()'s UPDATE as (sql, params), to run with other writes (execute_guarded)."""
        fields = [self.model._meta.get_field(name) for name in values]
        quote = connection.ops.quote_name
        sql = (f"UPDATE {quote(self.model._meta.db_table)} SET "
               f"{', '.join(f'{quote(field.column)} = %s' for field in fields)} "
               f"WHERE {quote(self.model._meta.pk.column)} = %s" + (f" AND {guard}" if guard else ""))
        params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values())]
        return sql, [*params, self.param(self.model._meta.pk.name, pk)]

    def convert(self, name, value):
        """A value selected from field `name`'s column (an aggregate of it), as the ORM loads it."""
        field = self.model._meta.get_field(name)
        column = field.get_col(self.model._meta.db_table)
        for function in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            value = function(value, column, connection)
        return value

    def load(self, row, start=0):
        """The instance whose columns are row[start:start + len(self)]."""
        values = list(row[start : start + len(self.fields)])
        for index, column, functions in self.converters():
            value = values[index]
            for function in functions:
                value = function(value, column, connection)
            values[index] = value
        if self._plain_init is None:
            # Model.__init__ only sets each attribute (its cost is the per-field bookkeeping,
            # ~1 µs a column); a model with init signals (none here) goes through it.
            self._plain_init = not (signals.pre_init.has_listeners(self.model)
                                    or signals.post_init.has_listeners(self.model))
        if not self._plain_init:
            return self.model.from_db(connection.alias, self.attnames, values)
        instance = self.model.__new__(self.model)
        instance.__dict__.update(zip(self.attnames, values))
        instance._state = ModelState()
        instance._state.adding = False
        instance._state.db = connection.alias
        return instance


def cascade_delete(model, where, params, returning):
    """Delete the rows of `model` for which `where` holds (a condition on its table's columns,
    with `params`) and every row that cascades from them, as Django's collector does, and
    return the deleted rows' `returning` columns. In one statement on PostgreSQL (each cascade a
    data-modifying WITH; its foreign keys are checked at commit), children first on SQLite.

    The collector costs a SELECT per level and the compilation of each DELETE; this plan is
    read from the same model metadata once. It refuses (ValueError) a relation it would have to
    handle differently (SET_NULL, PROTECT, …) or a model with delete signals, so a new
    relation can't be skipped silently: use Model.delete() for those."""
    key = (model, where, tuple(returning))
    if key not in _cascades:
        _cascades[key] = _cascade_statements(model, where, returning)
    statements, copies = _cascades[key]
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, list(params) * copies[sql])
        return cursor.fetchall()


_cascades = {}


def _cascade_plan(model, where, path=()):
    """[(table, condition)] for `model`'s rows matching `where` and their cascades, children first."""
    if model in path:
        raise ValueError(f"{model.__name__} cascades to itself: use Model.delete()")
    if signals.pre_delete.has_listeners(model) or signals.post_delete.has_listeners(model):
        raise ValueError(f"{model.__name__} has delete signals: use Model.delete()")
    quote = connection.ops.quote_name
    plan = []
    for relation in get_candidate_relations_to_delete(model._meta):
        if relation.on_delete is DO_NOTHING:
            continue
        if relation.on_delete is not CASCADE:
            raise ValueError(f"{relation.related_model.__name__}.{relation.field.name} is "
                             f"{relation.on_delete.__name__}: use Model.delete()")
        child_where = (f"{quote(relation.field.column)} IN (SELECT {quote(relation.field.target_field.column)} "
                       f"FROM {quote(model._meta.db_table)} WHERE {where})")
        plan += _cascade_plan(relation.related_model, child_where, (*path, model))
    return [*plan, (model._meta.db_table, where)]


def _cascade_statements(model, where, returning):
    quote = connection.ops.quote_name
    *cascades, (table, condition) = _cascade_plan(model, where)
    last = (f"DELETE FROM {quote(table)} WHERE {condition} "
            f"RETURNING {', '.join(quote(model._meta.get_field(name).column) for name in returning)}")
    if connection.vendor == "postgresql":
        ctes = ", ".join(f"cascade_{i} AS (DELETE FROM {quote(t)} WHERE {c})" for i, (t, c) in enumerate(cascades))
        sql = f"WITH {ctes} {last}" if cascades else last
        return [sql], {sql: len(cascades) + 1}
    statements = [f"DELETE FROM {quote(t)} WHERE {c}" for t, c in cascades] + [last]
    return statements, {sql: 1 for sql in statements}
