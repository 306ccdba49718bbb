"""Mapping files of the generic SQL seeder: TOML -> ``Mapping`` -> rows per identity.

The format is described in docs/seeders.md. Everything that can be checked
without a database is checked here (unknown keys, fields, transforms, refs
to tables not inserted yet); fit against the real tables is the SqlTarget's
job once connected. Every error is one line naming the file, the table and
the column.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from canary.errors import MappingError
from canary.model import Identity
from seeders.sql import fields as f
from seeders.sql.columns import (
    FILL_KINDS, GENERATE_KINDS, NOW_KINDS, SITE_KINDS, SOURCES, UNSET, ColumnSpec, split_index, template_fields,
)
from seeders.sql.related import RelatedSpec, parse_related
from seeders.sql.rows import DB_GENERATED_KINDS, Generated, Ref, RowPlan
from seeders.sql.sitevalues import SiteValues
from seeders.common.transforms import PHONE_FORMATS, TRANSFORMS

# Keys allowed next to each value source in a column.
_COLUMN_KEYS = {
    "field": {"index", "join", "format", "phone", "map", "transform", "default", "fill", "given"},
    "template": {"transform", "default", "fill", "given"},
    "const": set(),
    "now": {"fill", "given", "after"},
    "generate": {"sequence"},
    "ref": set(),
    "site": {"given"},
}
_TABLE_KEYS = {"name", "alias", "key", "columns"}
_TOP_KEYS = {"schema", "table", "related", "match", "locate", "audit"}  # [audit]: read by canary/access/auditdb.py
MATCH_KEYS = ("nir", "last_name", "first_name", "birth_date")
# What [locate] may search by: identity fields unique to one canary.
LOCATE_KEYS = ("nir", "email", "phone", "phone2", "portal_login", "url_code", "portal_url", "dns_label", "hostname")


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    alias: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)

    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.columns}

    def generated(self) -> dict[str, Generated]:
        return {c.name: Generated(c.generate, c.sequence) for c in self.columns
                if c.source == "generate" and c.generate in DB_GENERATED_KINDS}


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column of a mapped table, as ``alias.column`` in [match] / [locate]."""

    alias: str
    column: str


@dataclass(frozen=True, slots=True)
class Mapping:
    path: str
    tables: tuple[TableSpec, ...]
    schema: str | None = None
    match: dict[str, ColumnRef] = field(default_factory=dict)  # keys from MATCH_KEYS
    locate: tuple[ColumnRef, ...] = ()  # tried in order
    related: tuple[RelatedSpec, ...] = ()  # one-to-many footprint tables ([[related]])

    def error(self, table: str | None, column: str | None, message: str) -> MappingError:
        return MappingError(_where(self.path, table, column) + message)

    def table(self, alias: str) -> TableSpec:
        return next(t for t in (*self.tables, *(r.table for r in self.related)) if t.alias == alias)

    @property
    def patients(self) -> TableSpec:
        """The patient table: the first mapped table that refers to no other."""
        return next(t for t in self.tables if not any(c.source == "ref" for c in t.columns))

    def learns(self) -> bool:
        """Whether planting needs to read the site first (values, rows or shares drawn from it)."""
        return any(c.learns for t in (*self.tables, *(r.table for r in self.related)) for c in t.columns) \
            or any(r.rows is None or r.share is None for r in self.related)

    def spec(self, ref: ColumnRef) -> ColumnSpec:
        return self.table(ref.alias).column(ref.column)

    def rows(self, identity: Identity, now: datetime | None = None,
             site: SiteValues | None = None) -> list[RowPlan]:
        """The rows to insert for ``identity``; MappingError if a value cannot be made.

        Without ``site`` (collision checks, locate), columns drawn from the
        site are NULL and ``fill`` columns keep the identity's value.
        """
        now = (now or datetime.now()).replace(microsecond=0)
        return [self.row(table, identity, now, site) for table in self.tables]

    def row(self, table: TableSpec, identity: Identity, now: datetime, site: SiteValues | None,
            literal_refs: dict[str, Any] | None = None) -> RowPlan:
        """One row of ``table``; ``literal_refs`` gives refs a known value (a row inserted earlier)."""
        values: dict[str, Any] = {}
        refs: dict[str, Ref] = {}
        for column in table.columns:
            if column.source == "ref" and literal_refs is not None and column.name in literal_refs:
                values[column.name] = literal_refs[column.name]
            elif column.source == "ref":
                refs[column.name] = column.ref
            elif column.source != "generate" or column.generate not in DB_GENERATED_KINDS:
                try:
                    values[column.name] = column.value(identity, now)
                except ValueError as err:
                    raise self.error(table.alias, column.name, str(err)) from None
                if site is not None and column.after is not None:
                    values[column.name] = column.value(identity, now + site.delay(table.name, column.name))
                if site is not None and (column.source == "site" or column.fill is not None):
                    given = site.key(values, column.given)
                    values[column.name] = (site.draw(table.name, column.name, given) if column.source == "site"
                                           else site.fill(table.name, column.name, given, values[column.name]))
        unchecked = frozenset(c.name for c in table.columns if not c.verify or c.source == "now")
        return RowPlan(table=table.name, key=table.key, values=values, generated=table.generated(),
                       refs=refs, alias=table.alias, unchecked=unchecked)


def _where(path: str, table: str | None, column: str | None) -> str:
    where = f"{path}: "
    if table is not None:
        where += f"table '{table}', "
    if column is not None:
        where += f"column '{column}', "
    return where


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; MappingError (one line) if it is not usable."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"mapping file {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MappingError(f"mapping file {path} cannot be read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"{path}: not valid TOML: {err}") from None
    return parse_mapping(data, str(path))


def parse_mapping(data: dict[str, Any], path: str = "<mapping>") -> Mapping:
    def fail(message: str, table: str | None = None, column: str | None = None) -> MappingError:
        return MappingError(_where(path, table, column) + message)

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        known = ", ".join(sorted(_TOP_KEYS))
        raise fail(f"unknown key '{unknown[0]}'{_suggest(unknown[0], _TOP_KEYS)} (known: {known})")
    raw_tables = data.get("table")
    if not isinstance(raw_tables, list) or not raw_tables:
        raise fail("no [[table]]: map at least one table")
    schema = data.get("schema")
    if schema is not None and (not isinstance(schema, str) or not schema):
        raise fail("schema must be a name, e.g. schema = \"public\"")
    tables: list[TableSpec] = []
    for raw in raw_tables:
        tables.append(_parse_table(raw, tables, fail))
    related = parse_related(data.get("related"), tables, _parse_table, fail)
    aliases = {t.alias: t for t in tables}
    match = _parse_refs(data.get("match"), "match", MATCH_KEYS, aliases, fail)
    _check_match(match, fail)
    locate_raw = data.get("locate")
    if locate_raw is None:
        locate = {"nir": match["nir"]} if "nir" in match else {}
    else:
        locate = _parse_refs(locate_raw, "locate", LOCATE_KEYS, aliases, fail)
    for name, ref in locate.items():
        if name not in aliases[ref.alias].column(ref.column).sources:
            raise fail(f"[locate] {name} must be a column mapped from the field '{name}'", ref.alias, ref.column)
    return Mapping(path=path, tables=tuple(tables), schema=schema, match=match,
                   locate=tuple(locate.values()), related=related)


def _parse_table(raw: Any, earlier: list[TableSpec], fail, *, section: str = "table",
                 more_keys: frozenset[str] = frozenset(), link: ColumnSpec | None = None) -> TableSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise fail(f"every [[{section}]] needs name = \"TABLE\"")
    name = raw["name"]
    allowed = _TABLE_KEYS | more_keys
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise fail(f"unknown key '{unknown[0]}'{_suggest(unknown[0], allowed)}", name)
    alias = raw.get("alias", name)
    if not isinstance(alias, str) or not alias or "." in alias:
        raise fail("alias must be a name without dots", name)
    if any(t.alias == alias for t in earlier):
        raise fail("is mapped twice: give the second one alias = \"OTHER_NAME\"", alias)
    columns_raw = raw.get("columns")
    if not isinstance(columns_raw, dict) or not columns_raw:
        raise fail(f"no [{section}.columns]: map at least one column", alias)
    if link is not None:
        if link.name in columns_raw:
            raise fail("is the link column: link = ... writes it, remove it from the columns", alias, link.name)
        columns_raw = {link.name: link, **columns_raw}
    columns = tuple(spec if isinstance(spec, ColumnSpec) else _parse_column(
        col, spec, earlier, lambda m, c=col: fail(m, alias, c)) for col, spec in columns_raw.items())
    for n, column in enumerate(columns):
        above = {c.name for c in columns[:n]}
        if column.after is not None and (column.after not in above or next(
                c for c in columns if c.name == column.after).source != "now"):
            raise fail(f"after '{column.after}' must be a now column mapped above this one", alias, column.name)
        for given in column.given:
            if given not in above:
                raise fail(f"given '{given}' must be a column mapped above this one in the same table",
                           alias, column.name)
    key = raw.get("key")
    key = (key,) if isinstance(key, str) else key
    if not key or not isinstance(key, (list, tuple)) or not all(isinstance(k, str) for k in key):
        raise fail("needs key = [\"COLUMN\", ...]: the column(s) that identify a row", alias)
    for column in key:
        if column not in columns_raw:
            raise fail("is a key column but is not mapped: the seeder must know its value", alias, column)
    if sum(1 for c in columns if c.generate == "autoincrement") > 1:
        raise fail("more than one autoincrement column", alias)
    return TableSpec(name=name, alias=alias, key=tuple(key), columns=columns)


def _parse_column(name: str, raw: Any, earlier: list[TableSpec], fail) -> ColumnSpec:
    if isinstance(raw, str):
        raw = {"field": raw}  # shorthand: nom = "last_name"
    if not isinstance(raw, dict):
        raise fail("must be a table such as { field = \"last_name\" } or { const = \"X\" }")
    sources = [s for s in SOURCES if s in raw]
    if len(sources) != 1:
        raise fail(f"needs exactly one of {', '.join(SOURCES)}")
    source = sources[0]
    allowed = _COLUMN_KEYS[source] | {source, "verify"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise fail(f"unknown key '{unknown[0]}' with {source}{_suggest(unknown[0], allowed)}")
    verify = raw.get("verify", True)
    if not isinstance(verify, bool):
        raise fail("verify must be true or false")
    common = {"name": name, "source": source, "verify": verify, **_learning(raw, fail)}
    if source == "field":
        return _parse_field(raw, common, fail)
    if source == "template":
        return _parse_template(raw, common, fail)
    if source == "const":
        return ColumnSpec(**common, const=_const(raw["const"], fail), kind=_literal_kind(raw["const"]))
    if source == "now":
        now = raw["now"]
        if not isinstance(now, str) or (now not in NOW_KINDS and "%" not in now):
            raise fail("now must be \"datetime\", \"date\" or a strftime format such as \"%Y-%m-%d %H:%M:%S\"")
        kind = {"datetime": f.DATETIME, "date": f.DATE}.get(now, f.TEXT)
        return ColumnSpec(**common, now=now, kind=kind)
    if source == "generate":
        return _parse_generate(raw, common, fail)
    if source == "site":
        if raw["site"] not in SITE_KINDS:
            raise fail(f"unknown site {raw['site']!r} (known: {', '.join(SITE_KINDS)})")
        return ColumnSpec(**common, kind=f.ANY)
    return _parse_ref(raw["ref"], common, earlier, fail)


def _learning(raw: dict[str, Any], fail) -> dict[str, Any]:
    """The site / fill / given keys of a column, checked."""
    out: dict[str, Any] = {}
    if "site" in raw:
        out["site"] = raw["site"]
    if "fill" in raw:
        if raw["fill"] not in FILL_KINDS:
            raise fail(f"unknown fill {raw['fill']!r} (known: {', '.join(FILL_KINDS)})")
        out["fill"] = raw["fill"]
    given = raw.get("given", [])
    given = [given] if isinstance(given, str) else given
    if not isinstance(given, list) or not all(isinstance(g, str) and g for g in given):
        raise fail("given must be a column name or a list of column names, e.g. given = [\"sexe\"]")
    if given and "site" not in out and "fill" not in out:
        raise fail("given goes with site = \"values\" or fill = \"site\"")
    out["given"] = tuple(given)
    if "after" in raw:
        if not isinstance(raw["after"], str) or not raw["after"]:
            raise fail("after must name a now column, e.g. after = \"cree_le\"")
        out["after"] = raw["after"]
    return out


def _parse_field(raw: dict[str, Any], common: dict[str, Any], fail) -> ColumnSpec:
    path = raw["field"]
    if not isinstance(path, str):
        raise fail("field must be a field name such as \"last_name\"")
    try:
        path, index = split_index(path)
    except ValueError:
        raise fail(f"field '{raw['field']}': the index must be a number, e.g. first_names[1]") from None
    kind = f.field_kind(path)
    if kind is None:
        raise fail(f"unknown field '{path}'{_suggest(path, f.catalogue())}")
    if "index" in raw:
        if index is not None or not isinstance(raw["index"], int) or isinstance(raw["index"], bool):
            raise fail("index must be one whole number")
        index = raw["index"]
    join = raw.get("join")
    if kind == f.LIST:
        if (index is None) == (join is None):
            raise fail(f"'{path}' is a list: give join = \" \" or index = 0 (one of them)")
        kind = f.TEXT
    elif index is not None or join is not None:
        raise fail(f"'{path}' is not a list: index and join apply to list fields only")
    if join is not None and not isinstance(join, str):
        raise fail("join must be text, e.g. join = \" \"")
    date_format = raw.get("format")
    if date_format is not None:
        if kind not in (f.DATE, f.DATETIME):
            raise fail(f"format applies to dates only and '{path}' is not one")
        if not isinstance(date_format, str) or "%" not in date_format:
            raise fail("format must be a strftime format such as \"%d/%m/%Y\"")
        kind = f.TEXT
    phone = raw.get("phone")
    if phone is not None:
        if phone not in PHONE_FORMATS:
            raise fail(f"unknown phone format {phone!r} (known: {', '.join(PHONE_FORMATS)})")
        if kind != f.TEXT:
            raise fail(f"phone applies to phone numbers and '{path}' is a {kind}")
    transforms = _transforms(raw.get("transform"), kind, fail)
    value_map = raw.get("map")
    if value_map is not None:
        if not isinstance(value_map, dict) or not value_map:
            raise fail("map must be a table such as { M = \"H\", F = \"F\" }")
        kind = _common_kind([_literal_kind(v) for v in value_map.values()])
    return ColumnSpec(**common, field=path, index=index, join=join, date_format=date_format, phone=phone,
                      value_map=value_map, transforms=transforms, default=_default(raw, fail),
                      kind=kind, sources=(path,))


def _parse_template(raw: dict[str, Any], common: dict[str, Any], fail) -> ColumnSpec:
    template = raw["template"]
    if not isinstance(template, str):
        raise fail("template must be text such as \"{last_name} {first_name}\"")
    try:
        names = template_fields(template)
        paths = [split_index(name) for name in names]
    except ValueError as err:
        raise fail(f"bad template: {err}") from None
    for path, index in paths:
        kind = f.field_kind(path)
        if kind is None:
            raise fail(f"unknown field '{path}' in template{_suggest(path, f.catalogue())}")
        if kind == f.LIST and index is None:
            raise fail(f"'{path}' is a list: write {{{path}[0]}} in the template")
    return ColumnSpec(**common, template=template, transforms=_transforms(raw.get("transform"), f.TEXT, fail),
                      default=_default(raw, fail), kind=f.TEXT, sources=tuple(p for p, _ in paths))


def _parse_generate(raw: dict[str, Any], common: dict[str, Any], fail) -> ColumnSpec:
    kind = raw["generate"]
    if kind not in GENERATE_KINDS:
        raise fail(f"unknown generate {kind!r} (known: {', '.join(GENERATE_KINDS)})")
    sequence = raw.get("sequence")
    if (kind == "sequence") != (sequence is not None):
        raise fail("generate = \"sequence\" goes with sequence = \"NAME\" (and only with it)")
    if sequence is not None and (not isinstance(sequence, str) or not sequence):
        raise fail("sequence must be a sequence name")
    return ColumnSpec(**common, generate=kind, sequence=sequence,
                      kind=f.TEXT if kind.startswith("uuid") else f.INT)


def _parse_ref(ref: Any, common: dict[str, Any], earlier: list[TableSpec], fail) -> ColumnSpec:
    alias, _, column = ref.partition(".") if isinstance(ref, str) else ("", "", "")
    table = next((t for t in earlier if t.alias == alias), None)
    if table is None:
        raise fail(f"ref {ref!r} must name a column of a table mapped above, as \"TABLE.COLUMN\"")
    target = table.column(column)
    if target is None:
        raise fail(f"ref {ref!r}: table '{alias}' maps no column '{column}'")
    return ColumnSpec(**common, ref=Ref(alias, column), kind=target.kind)


def _parse_refs(raw: Any, section: str, keys: tuple[str, ...], aliases: dict[str, TableSpec],
                fail) -> dict[str, ColumnRef]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail(f"[{section}] must be a table of NAME = \"TABLE.COLUMN\"")
    refs = {}
    for name, value in raw.items():
        if name not in keys:
            raise fail(f"[{section}] unknown key '{name}'{_suggest(name, keys)} (known: {', '.join(keys)})")
        alias, _, column = value.partition(".") if isinstance(value, str) else ("", "", "")
        if alias not in aliases or aliases[alias].column(column) is None:
            raise fail(f"[{section}] {name} = {value!r} is not a mapped \"TABLE.COLUMN\"")
        if not aliases[alias].column(column).deterministic:
            raise fail(f"[{section}] {name} must be a column mapped from the identity", alias, column)
        refs[name] = ColumnRef(alias, column)
    return refs


def _check_match(match: dict[str, ColumnRef], fail) -> None:
    name_keys = [k for k in ("last_name", "first_name", "birth_date") if k in match]
    if name_keys and not {"last_name", "birth_date"} <= set(name_keys):
        raise fail("[match] needs both last_name and birth_date (first_name is optional)")
    if len({match[k].alias for k in name_keys}) > 1:
        raise fail("[match] last_name, first_name and birth_date must be columns of one table")


def _transforms(raw: Any, kind: str, fail) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail("transform must be a name or a list of names")
    for name in names:
        if name not in TRANSFORMS:
            raise fail(f"unknown transform '{name}'{_suggest(name, TRANSFORMS)} (known: {', '.join(TRANSFORMS)})")
    if kind != f.TEXT:
        raise fail(f"transform applies to text but the value is a {kind}: add a format first")
    return tuple(names)


def _default(raw: dict[str, Any], fail) -> Any:
    return _const(raw["default"], fail) if "default" in raw else UNSET


def _const(value: Any, fail) -> Any:
    if isinstance(value, (list, dict)):
        raise fail("a constant or default must be a single value, not a list or table")
    return value


def _literal_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f.BOOL
    if isinstance(value, int):
        return f.INT
    if isinstance(value, datetime):
        return f.DATETIME
    if isinstance(value, date):
        return f.DATE
    if isinstance(value, str):
        return f.TEXT
    return f.ANY


def _common_kind(kinds: list[str]) -> str:
    return kinds[0] if len(set(kinds)) == 1 else f.ANY
