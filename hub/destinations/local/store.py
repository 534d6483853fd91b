"""The local CRM's SQLite store: schema, connection pragmas, identity lookups, row reads and writes.

The store knows tables and SQL, not merge policy (that is `destination.py`). Several worker
processes share one database file: WAL lets readers run beside the one writer, `busy_timeout`
makes writers queue instead of failing, and every write runs in `BEGIN IMMEDIATE`, so a
find-then-insert can never interleave with another process's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

__all__ = ["SCHEMA_VERSION", "CrmStore", "Identity", "Row", "Table"]

#: Bumped when the schema changes; kept in `PRAGMA user_version`.
SCHEMA_VERSION: Final = 1

Table = Literal["contacts", "companies", "deals", "activities"]
#: A value that identifies one record: (kind, system, value), e.g. ("email", "", "a@b.co"),
#: ("external", "shopify", "123"). The system is "" for kinds that need none.
Identity = tuple[str, str, str]
Row = dict[str, Any]

#: Columns holding JSON text; decoded on read, encoded on write.
_JSON_COLUMNS: Final = frozenset(
    {"address", "tags", "lead_source", "line_items", "custom_fields", "external_ids", "metadata"}
)
_IDENTITY_TABLE: Final[dict[Table, str]] = {
    "contacts": "contact_identities",
    "companies": "company_identities",
    "deals": "deal_identities",
    "activities": "activity_identities",
}

_SCHEMA: Final = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    email TEXT, phone TEXT, first_name TEXT, last_name TEXT, company TEXT, job_title TEXT,
    address TEXT,                                   -- JSON object
    tags TEXT NOT NULL DEFAULT '[]',                -- JSON array, sorted
    marketing_consent TEXT NOT NULL DEFAULT 'unknown',
    lifecycle_stage TEXT,
    lead_source TEXT,                               -- JSON object
    custom_fields TEXT NOT NULL DEFAULT '{{}}',
    external_ids TEXT NOT NULL DEFAULT '{{}}',      -- JSON {{system: id}}
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS companies (
    id INTEGER PRIMARY KEY,
    name TEXT, domain TEXT, phone TEXT,
    address TEXT,
    custom_fields TEXT NOT NULL DEFAULT '{{}}',
    external_ids TEXT NOT NULL DEFAULT '{{}}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_companies (
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    company_id INTEGER NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, company_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deals (
    id INTEGER PRIMARY KEY,
    title TEXT,
    amount TEXT,                                    -- decimal as text: no float rounding
    currency TEXT, status TEXT NOT NULL DEFAULT 'open', stage TEXT, pipeline TEXT, close_date TEXT,
    line_items TEXT NOT NULL DEFAULT '[]',
    custom_fields TEXT NOT NULL DEFAULT '{{}}',
    external_ids TEXT NOT NULL DEFAULT '{{}}',
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    company_id INTEGER REFERENCES companies(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deals_by_contact_title ON deals (contact_id, title);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    occurred_at TEXT NOT NULL,                      -- ISO 8601 UTC, `Z`
    subject TEXT, body TEXT,
    external_ids TEXT NOT NULL DEFAULT '{{}}',
    metadata TEXT NOT NULL DEFAULT '{{}}',
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    deal_id INTEGER REFERENCES deals(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_by_natural_key ON activities (contact_id, kind, occurred_at, subject);
{
    "".join(
        f'''
CREATE TABLE IF NOT EXISTS {identities} (
    kind TEXT NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL,
    record_id INTEGER NOT NULL REFERENCES {table}(id) ON DELETE CASCADE,
    PRIMARY KEY (kind, system, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {identities}_by_record ON {identities} (record_id);'''
        for table, identities in _IDENTITY_TABLE.items()
    )
}
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""

#: Text searched by `--search`, per read query (SQL expressions over the query's aliases).
_CONTACT_TEXT: Final = (
    "c.email",
    "c.phone",
    "c.first_name",
    "c.last_name",
    "c.company",
    "c.tags",
    "co.names",
)
_DEAL_TEXT: Final = (
    "d.title",
    "d.stage",
    "d.pipeline",
    "d.status",
    "c.email",
    "c.first_name",
    "c.last_name",
    "co.name",
    "d.external_ids",
)
_ACTIVITY_TEXT: Final = ("a.kind", "a.subject", "a.body", "c.email", "c.first_name", "c.last_name")


def _fold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def _haystack(columns: Iterable[str]) -> str:
    return " || ' ' || ".join(f"coalesce({column}, '')" for column in columns)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: json.dumps(value, ensure_ascii=False, sort_keys=True)
        if key in _JSON_COLUMNS and value is not None
        else value
        for key, value in values.items()
    }


def _decode(row: sqlite3.Row) -> Row:
    decoded: Row = {}
    for key in row.keys():
        value = row[key]
        decoded[key] = json.loads(value) if key in _JSON_COLUMNS and value is not None else value
    return decoded


def _ids_as_text(row: Row, *keys: str) -> Row:
    for key in keys:
        if row.get(key) is not None:
            row[key] = str(row[key])
    return row


def _full_name(first: str | None, last: str | None) -> str | None:
    return " ".join(part for part in (first, last) if part) or None


class CrmStore:
    """One connection to the local CRM database, safe to share between threads.

    Args:
        path: the database file; its folder is created if missing.
        timeout: seconds a writer waits for another process's transaction before failing.
    """

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.create_function("crm_fold", 1, _fold, deterministic=True)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer. NORMAL sync is durable across process crashes,
            # which is what the delivery layer's exactly-once guarantee needs.
            self._prepare(time.monotonic() + timeout)
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self, deadline: float) -> None:
        # Switching to WAL needs an exclusive lock and SQLite does not always wait for it
        # (busy_timeout does not cover that upgrade), so processes opening a new file at the
        # same moment can see "database is locked": wait for the other one to finish.
        while True:
            try:
                if self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                if self._conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    self._conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                time.sleep(0.05)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[CrmStore]:
        """One write transaction, taken with `BEGIN IMMEDIATE` (the write lock, up front)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- identities ------------------------------------------------------------------------

    def find(self, table: Table, identities: Iterable[Identity]) -> int | None:
        """The record owning the first identity that is known, trying them in order."""
        sql = f"SELECT record_id FROM {_IDENTITY_TABLE[table]} WHERE kind = ? AND system = ? AND value = ?"  # noqa: S608 - fixed table names
        for identity in identities:
            found = self._conn.execute(sql, identity).fetchone()
            if found is not None:
                return int(found[0])
        return None

    def claim(self, table: Table, record_id: int, identities: Iterable[Identity]) -> None:
        """Point identities at a record; one already owned by another record stays with it."""
        self._conn.executemany(
            f"INSERT OR IGNORE INTO {_IDENTITY_TABLE[table]} (kind, system, value, record_id) "  # noqa: S608
            "VALUES (?, ?, ?, ?)",
            [(*identity, record_id) for identity in identities],
        )

    def find_where(self, table: Table, **columns: Any) -> int | None:
        """The oldest record whose columns equal the values (NULL matches NULL)."""
        where = " AND ".join(f"{column} IS ?" for column in columns) or "1"
        found = self._conn.execute(
            f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT 1",  # noqa: S608 - names from code
            tuple(columns.values()),
        ).fetchone()
        return None if found is None else int(found[0])

    # -- rows ------------------------------------------------------------------------------

    def get(self, table: Table, record_id: int) -> Row | None:
        row = self._conn.execute(f"SELECT * FROM {table} WHERE id = ?", (record_id,)).fetchone()  # noqa: S608
        return None if row is None else _decode(row)

    def exists(self, table: Table, record_id: int) -> bool:
        found = self._conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (record_id,)).fetchone()  # noqa: S608
        return found is not None

    def insert(self, table: Table, values: Mapping[str, Any]) -> int:
        now = _now()
        encoded = _encode({**values, "created_at": now, "updated_at": now})
        columns = ", ".join(encoded)
        marks = ", ".join("?" for _ in encoded)
        cursor = self._conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 - names from code
            tuple(encoded.values()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update(self, table: Table, record_id: int, values: Mapping[str, Any]) -> None:
        encoded = _encode({**values, "updated_at": _now()})
        assignments = ", ".join(f"{column} = ?" for column in encoded)
        self._conn.execute(
            f"UPDATE {table} SET {assignments} WHERE id = ?",  # noqa: S608 - names from code
            (*encoded.values(), record_id),
        )

    def link_contact_company(self, contact_id: int, company_id: int) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO contact_companies (contact_id, company_id, created_at) VALUES (?, ?, ?)",
            (contact_id, company_id, _now()),
        )

    # -- reads (plain dicts, ids as text) --------------------------------------------------

    def _select(self, sql: str, text: Iterable[str], search: str | None) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(
                sql.format(search=f"(? IS NULL OR instr(crm_fold({_haystack(text)}), ?) > 0)"),
                (search, _fold(search)),
            ).fetchall()

    def contacts(self, search: str | None = None) -> list[Row]:
        """Every contact (with `name` and linked `company_ids`), oldest first."""
        rows = self._select(
            """
            SELECT c.*, co.names AS linked_companies, co.ids AS company_ids
            FROM contacts c
            LEFT JOIN (
                SELECT cc.contact_id, group_concat(k.name, ', ') AS names,
                       json_group_array(cc.company_id) AS ids
                FROM contact_companies cc JOIN companies k ON k.id = cc.company_id
                GROUP BY cc.contact_id
            ) co ON co.contact_id = c.id
            WHERE {search} ORDER BY c.id
            """,
            _CONTACT_TEXT,
            search,
        )
        result = []
        for raw in rows:
            row = _decode(raw)
            linked = row.pop("linked_companies")
            ids = json.loads(row.pop("company_ids") or "[]")
            row["name"] = _full_name(row["first_name"], row["last_name"])
            row["company"] = row["company"] or linked
            row["company_ids"] = [str(i) for i in ids]
            result.append(_ids_as_text(row, "id"))
        return result

    def deals(self, search: str | None = None) -> list[Row]:
        """Every deal with its contact (email, else name) and company name, oldest first."""
        rows = self._select(
            """
            SELECT d.*, coalesce(c.email, nullif(trim(coalesce(c.first_name, '') || ' ' ||
                   coalesce(c.last_name, '')), ''), c.phone) AS contact,
                   co.name AS company
            FROM deals d
            LEFT JOIN contacts c ON c.id = d.contact_id
            LEFT JOIN companies co ON co.id = d.company_id
            WHERE {search} ORDER BY d.id
            """,
            _DEAL_TEXT,
            search,
        )
        return [_ids_as_text(_decode(row), "id", "contact_id", "company_id") for row in rows]

    def activities(self, search: str | None = None) -> list[Row]:
        """Every activity with its contact (email, else name), in time order."""
        rows = self._select(
            """
            SELECT a.*, coalesce(c.email, nullif(trim(coalesce(c.first_name, '') || ' ' ||
                   coalesce(c.last_name, '')), ''), c.phone) AS contact
            FROM activities a
            LEFT JOIN contacts c ON c.id = a.contact_id
            WHERE {search} ORDER BY a.occurred_at, a.id
            """,
            _ACTIVITY_TEXT,
            search,
        )
        return [_ids_as_text(_decode(row), "id", "contact_id", "deal_id") for row in rows]

    def counts(self) -> dict[str, int]:
        """Rows per table: contacts, companies, deals, activities."""
        with self._lock:
            return {
                table: int(self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
                for table in _IDENTITY_TABLE
            }
