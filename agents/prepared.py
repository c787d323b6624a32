"""Statements the ORM builds and compiles once, then runs again with other values.

    session_of = prepared.read(
        lambda caller_id: CallerSession.objects.filter(caller_id=caller_id)[:1],
        CallerSession,
        caller_id="caller_id",
    )
    session_of(caller_id="+14155550100")             # a list of CallerSession instances

    touch = prepared.update(
        lambda pk, now: (CallerSession.objects.filter(pk=pk), {"last_seen_at": now}),
        CallerSession,
        pk="id",
        now="last_seen_at",
    )
    touch(pk=7, now=timezone.now())                  # the number of rows changed

    insert_message = prepared.insert(Message)
    insert_message(Message(process=process, role="user", content="Hi"))   # the instance, saved

`build` receives a placeholder (`Param`) for each named value and returns the QuerySet (for `update`,
the QuerySet and its changes, as `QuerySet.update` takes them); the first call compiles it to SQL, and
every call runs that SQL with its values, each adapted to the database as the field named for it (a
field of the model given, or a Field itself) adapts a value. So the rule a statement expresses stays
written once, in the ORM (the QuerySet methods `build` uses), and only its compiled form is kept.
A read's rows become instances as Django's ModelIterable makes them (each column's converters, then
`Model.from_db`, then the annotations), from what the compiler said of its columns, kept too. An
insert is the INSERT `Model.save()` runs for a new instance (each field's `pre_save`, then its
adaptation), compiled once by Django's own compiler; it sends no model signals.

Only for the few statements every turn runs (agents.transcript's peek, begin and record): building and
compiling a QuerySet is most of a statement's cost, and a turn's database work holds the web process's
GIL. The session read on the way to every first token: 575 µs of CPU through the ORM, 88 µs prepared
(SQLite; bench/turn_writes.py measures a whole turn). What varies between runs must be a Param: a
value `build` reads from settings or the clock is compiled into the SQL for good.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Expression, Field, QuerySet
from django.db.models.sql.subqueries import InsertQuery, UpdateQuery


class Param(Expression):
    """A value given when a prepared statement runs; it compiles to a placeholder."""

    def __init__(self, name: str, field: Field):
        super().__init__(output_field=field)
        self.name = name

    def as_sql(self, compiler, connection):
        return "%s", [self]

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


class _Prepared:
    def __init__(self, build: Callable, model, fields: dict[str, str | Field]):
        self.build = build
        self.fields = {
            name: model._meta.get_field(field) if isinstance(field, str) else field
            for name, field in fields.items()
        }
        self.compiled: tuple | None = None  # (model, sql, params, a read's _Rows), made by the first call

    def compile(self) -> tuple:
        raise NotImplementedError

    def sql(self, values: dict) -> tuple:
        if values.keys() != self.fields.keys():
            raise TypeError(f"takes the values {sorted(self.fields)}, not {sorted(values)}")
        if self.compiled is None:
            self.compiled = self.compile()  # two threads may both compile: the same result
        model, sql, params, rows = self.compiled
        connection = connections[DEFAULT_DB_ALIAS]
        args = [
            param.output_field.get_db_prep_value(values[param.name], connection)
            if isinstance(param, Param)
            else param
            for param in params
        ]
        return model, sql, args, rows

    def placeholders(self) -> dict[str, Param]:
        return {name: Param(name, field) for name, field in self.fields.items()}


class _Read(_Prepared):
    def compile(self) -> tuple:
        queryset: QuerySet = self.build(**self.placeholders())
        compiler = queryset.query.get_compiler(DEFAULT_DB_ALIAS)
        sql, params = compiler.as_sql()
        klass = compiler.klass_info
        if klass.get("related_klass_infos"):
            raise TypeError("a prepared read takes no select_related()")
        # What Django's ModelIterable does with each row, worked out once: which columns are the
        # model's fields, which its annotations, and each column's converters (SQLite: a boolean comes
        # as 0 or 1, a datetime as text).
        start, end = klass["select_fields"][0], klass["select_fields"][-1] + 1
        rows = _Rows(
            fields=[column[0].target.attname for column in compiler.select[start:end]],
            span=slice(start, end),
            annotations=compiler.annotation_col_map,
            converters=compiler.get_converters([column[0] for column in compiler.select]),
        )
        return klass["model"], sql, params, rows

    def __call__(self, **values) -> list:
        model, sql, args, rows = self.sql(values)
        connection = connections[DEFAULT_DB_ALIAS]
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            found = cursor.fetchall()
        return [rows.instance(model, row, connection) for row in found]


@dataclass
class _Rows:
    fields: list[str]  # the attnames of the model's columns, in the SELECT's order
    span: slice  # where they are in a row
    annotations: dict[str, int]  # each annotation's column
    converters: dict[int, tuple[list, Expression]]  # a column's converters, and its expression

    def instance(self, model, row: tuple, connection):
        if self.converters:
            row = list(row)
            for column, (functions, expression) in self.converters.items():
                for convert in functions:
                    row[column] = convert(row[column], expression, connection)
        instance = model.from_db(DEFAULT_DB_ALIAS, self.fields, row[self.span])
        for name, column in self.annotations.items():
            setattr(instance, name, row[column])
        return instance


class _Update(_Prepared):
    def compile(self) -> tuple:
        queryset, changes = self.build(**self.placeholders())
        query = queryset.query.chain(UpdateQuery)  # as QuerySet.update does
        query.add_update_values(changes)
        query.annotations = {}
        sql, params = query.get_compiler(DEFAULT_DB_ALIAS).as_sql()
        return queryset.model, sql, params, None

    def __call__(self, **values) -> int:
        _model, sql, args, _rows = self.sql(values)
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.rowcount


def read(build: Callable[..., QuerySet], model, **fields: str | Field) -> Callable[..., list]:
    """A prepared read: `build(**placeholders)` returns the QuerySet; calls return its model instances."""
    return _Read(build, model, fields)


def update(build: Callable[..., tuple[QuerySet, dict]], model, **fields: str | Field) -> Callable[..., int]:
    """A prepared UPDATE: `build(**placeholders)` returns (QuerySet, changes); calls return the rows
    changed."""
    return _Update(build, model, fields)


class _Insert:
    def __init__(self, model):
        self.model = model
        self.compiled: tuple | None = None  # (fields, sql, returns the pk), made by the first call

    def compile(self) -> tuple:
        opts = self.model._meta
        fields = [f for f in opts.local_concrete_fields if f is not opts.auto_field and not f.generated]
        if any(hasattr(field, "get_placeholder") for field in fields):
            raise TypeError(f"{self.model.__name__} has a field with a placeholder of its own")
        query = InsertQuery(self.model)
        query.insert_values(fields, [self.model()])  # any instance: the placeholders are all %s
        compiler = query.get_compiler(DEFAULT_DB_ALIAS)
        compiler.returning_fields = [opts.pk]
        [(sql, _params)] = compiler.as_sql()
        return fields, sql, compiler.connection.features.can_return_columns_from_insert

    def __call__(self, instance):
        if self.compiled is None:
            self.compiled = self.compile()
        fields, sql, returns = self.compiled
        connection = connections[DEFAULT_DB_ALIAS]
        args = []
        for field in fields:
            value = field.pre_save(instance, add=True)
            if hasattr(value, "resolve_expression"):
                raise TypeError(f"{field.name}: an expression, which a prepared insert cannot take")
            args.append(field.get_db_prep_save(value, connection))
        opts = self.model._meta
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            if returns:
                instance.pk = cursor.fetchone()[0]
            else:
                instance.pk = connection.ops.last_insert_id(cursor, opts.db_table, opts.pk.column)
        instance._state.adding, instance._state.db = False, DEFAULT_DB_ALIAS
        return instance


def insert(model) -> Callable:
    """A prepared INSERT of one new instance of `model` (its primary key set by the database): calls
    store the instance given, as `save()` would, and return it with its primary key."""
    return _Insert(model)
