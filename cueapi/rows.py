"""Model instances from hand-written SQL, for the few statements every request runs.

Compiling an ORM query costs Django about as much CPU as PostgreSQL spends running a simple
indexed one (more for wide rows: each column is an expression to compile), and the hot paths
ask the same question thousands of times a second. There the SQL is written once, as a
string, and its rows become model instances here, with the same conversions the ORM applies
to each column (SQLite's text datetimes and UUIDs, JSON), so the instances are the ones a
queryset would return.
"""

from django.db import connection
from django.db.models import CASCADE, DO_NOTHING, signals
from django.db.models.base import ModelState
from django.db.models.deletion import get_candidate_relations_to_delete


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
        return self.model._meta.get_field(name).get_db_prep_value(value, connection)

    def insert(self, instance, names=None):
        """INSERT `instance` (its fields `names`, default all), as save(force_insert=True) does
        for a model with no save signals or overrides: auto_now fields are set, defaults are
        already on the instance, and nothing is read back (the primary key must be set, or be
        the table's own, e.g. an audit entry's serial)."""
        fields = self.fields if names is None else [self.model._meta.get_field(name) for name in names]
        key = tuple(field.attname for field in fields)
        if key not in self._inserts:
            quote = connection.ops.quote_name
            self._inserts[key] = (f"INSERT INTO {quote(self.model._meta.db_table)} "
                                  f"({', '.join(quote(field.column) for field in fields)}) "
                                  f"VALUES ({', '.join(['%s'] * len(fields))})")
        values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(self._inserts[key], values)
        instance._state.adding = False
        instance._state.db = connection.alias

    def update(self, pk, values, *, guard=""):
        """UPDATE row `pk` to `values` (field name -> plain value) if `guard`, a condition on
        its columns, also holds; return the number of rows changed (0 or 1)."""
        fields = [self.model._meta.get_field(name) for name in values]
        quote = connection.ops.quote_name
        sql = (f"UPDATE {quote(self.model._meta.db_table)} SET "
               f"{', '.join(f'{quote(field.column)} = %s' for field in fields)} "
               f"WHERE {quote(self.model._meta.pk.column)} = %s" + (f" AND {guard}" if guard else ""))
        params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values())]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, self.param(self.model._meta.pk.name, pk)])
            return cursor.rowcount

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
