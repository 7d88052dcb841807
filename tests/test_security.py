"""Security properties that hold for the whole code base: SQL takes values only as bound parameters, identifiers
are checked before they are quoted into SQL, and the local servers listen on loopback only."""

from __future__ import annotations

import ast
import ipaddress
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest

from control.stack import Stack
from warehouse.client import identifier

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["bot", "speech_coach", "warehouse", "orchestration", "flink_jobs", "benchmarks", "control"]
SQL_METHODS = {"execute", "executemany", "execute_iter", "query", "query_df", "command", "sql", "raw_sql"}

# Every statement that is not one string literal, with why it is safe. Values always travel as bound parameters
# (%s, %(name)s); what is formatted into these strings is a constant of the code or an identifier checked by
# `identifier()`. A new entry needs the same review: the test fails on any statement missing here.
REVIEWED: dict[tuple[str, str], str] = {
    ("bot/repo.py", "_LEARNER_SQL + ' WHERE l.telegram_user_id = %s'"): "constant + constant; value bound",
    ("bot/repo.py", "_LEARNER_SQL + ' WHERE l.id = %s'"): "constant + constant; value bound",
    ("bot/repo.py", "f'UPDATE learners SET {assignments} WHERE id = %s'"):
        "column names from an allow-list (asserted above the statement); values bound",
    ("speech_coach/db/questions.py", "f\"INSERT INTO questions ({', '.join(COLUMNS)}, updated_at) VALUES "):
        "column names and placeholders from the COLUMNS constant; values bound",
    ("control/stack/clickhouse.py", "f'CREATE DATABASE IF NOT EXISTS `{identifier(database)}`'"):
        "database name checked by identifier()",
    ("control/stack/clickhouse_server.py", "SERVE_SQL"): "module constant",
    ("warehouse/client.py", "f'CREATE DATABASE IF NOT EXISTS `{identifier(name)}`'"):
        "database name checked by identifier()",
    ("warehouse/client.py", "f\"INSERT INTO `{identifier(table)}` ({', '.join((f'`{identifier(c)}`' for c in "):
        "table and column names checked by identifier(); rows bound",
    ("warehouse/exports.py", "f\"SELECT {', '.join(SOURCE_COLUMNS)} FROM research_answers WHERE answered_mon"):
        "columns from the codebook constant; the month bound",
    ("warehouse/exports.py", "f\"CREATE TABLE answers AS SELECT * FROM read_parquet('{src}') ORDER BY answer_i"):
        "a path in a temporary directory the function created itself",
    ("warehouse/generate.py", "f\"INSERT INTO {table} ({', '.join(names)}) VALUES\""):
        "synthetic-data generator: constant table and column names; rows bound",
    ("warehouse/ingest.py", "f'DELETE FROM `{table}` WHERE learner_id IN %(ids)s'"):
        "table from the LEARNER_TABLES constant; learner ids bound",
    ("warehouse/migrate.py", "statement"): "statements of the repository's migration files",
    ("orchestration/domains/learners.py", "sql"): "module constants (LEARNERS_SQL, LEDGER_SQL)",
    ("orchestration/domains/quality.py", "sql"): "module constants of the expectation suites",
    ("speech_coach/db/migrations/versions/0005_ledger_lock_order.py", "BALANCE.format(lock="):
        "a module constant completed with a literal lock mode",
    ("speech_coach/db/migrations/versions/0011_ledger_order_after_lock.py", "BALANCE.format(renumber="):
        "a module constant completed with a module constant statement or nothing",
    ("control/harness/pipeline.py", "query"): "the test harness's helper: queries written in the tests, values bound",
    ("control/simulator/run.py", "f'SELECT count() FROM {t} FINAL WHERE answer_id IN %(ids)s'"):
        "table names from a constant tuple; answer ids bound",
}  # fmt: skip


def _composed_with_psycopg_sql(node: ast.expr) -> bool:
    """psycopg's sql.SQL(...).format(sql.Identifier(...)): quoting done by the driver."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Call)
        and ast.unparse(node.func.value.func) in {"sql.SQL", "psycopg.sql.SQL"}
    )


def sql_statements() -> Iterable[tuple[str, int, str]]:
    """(path, line, source) of the first argument of every SQL call that is not a plain string literal."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                    continue
                statement = node.args[0]
                if node.func.attr not in SQL_METHODS or isinstance(statement, ast.Constant):
                    continue
                if _composed_with_psycopg_sql(statement):
                    continue
                yield str(path.relative_to(ROOT)), node.lineno, ast.unparse(statement)


def test_every_sql_statement_is_parameterized() -> None:
    def reviewed(path: str, source: str) -> tuple[str, str] | None:  # entries hold the statement's beginning
        return next((k for k in REVIEWED if k[0] == path and source.startswith(k[1])), None)

    found = [(path, line, source, reviewed(path, source)) for path, line, source in sql_statements()]
    unreviewed = [f"{path}:{line}: {source[:120]}" for path, line, source, entry in found if entry is None]
    assert not unreviewed, "SQL built from non-literal strings; bind values as parameters, or review and list here"
    stale = set(REVIEWED) - {entry for *_, entry in found}
    assert not stale, f"stale entries: {sorted(stale)}"


def test_the_scan_sees_formatted_sql(tmp_path: Path) -> None:
    # The scanner itself: the shapes of string building that would smuggle values into SQL are all caught.
    bad = ['cur.execute(f"SELECT * FROM t WHERE id = {x}")', 'cur.execute("SELECT %s" % x)',
           'cur.execute("SELECT {}".format(x))', 'cur.execute("SELECT " + x)', "client.query(q)"]  # fmt: skip
    good = ['cur.execute("SELECT 1 WHERE id = %s", (x,))', 'conn.execute(sql.SQL("DROP {}").format(sql.Identifier(n)))']
    for source in bad:
        node = ast.parse(source).body[0].value  # type: ignore[attr-defined]
        assert not isinstance(node.args[0], ast.Constant) and not _composed_with_psycopg_sql(node.args[0]), source
    for source in good:
        node = ast.parse(source).body[0].value  # type: ignore[attr-defined]
        assert isinstance(node.args[0], ast.Constant) or _composed_with_psycopg_sql(node.args[0]), source


@pytest.mark.parametrize(
    "name", ["x`; DROP DATABASE default; --", "a b", "", "../etc", "naïve", "t\u200b", "db`", "1;2", "a-b"]
)
def test_identifiers_quoted_into_sql_are_refused_unless_plain(name: str) -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        identifier(name)
    assert identifier("speech_coach_2026") == "speech_coach_2026"


def listening(pids: Iterable[int]) -> dict[str, set[str]]:
    """Addresses each process (and its children) listens on: TCP LISTEN sockets and bound UDP sockets."""
    out: dict[str, set[str]] = {}
    for pid in pids:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                conns = proc.net_connections(kind="inet")
            except psutil.Error:
                continue
            for c in conns:
                if c.status == psutil.CONN_LISTEN or (c.status == psutil.CONN_NONE and not c.raddr):
                    out.setdefault(f"{proc.name()}[{pid}]", set()).add(c.laddr.ip)
    return out


def not_loopback(found: dict[str, set[str]]) -> dict[str, set[str]]:
    return {p: ips for p, ips in found.items() if any(not ipaddress.ip_address(ip).is_loopback for ip in ips)}


def test_local_servers_listen_on_loopback_only(stack: Stack) -> None:
    # The local servers have no authentication (ClickHouse, the broker) or test credentials: reachable from
    # this machine only.
    parts = [s for s in stack.status() if s.pid]
    assert {s.name for s in parts} >= {"postgres", "kafka", "clickhouse", "s3"}
    found = listening(s.pid for s in parts if s.pid)
    assert len(found) >= 4 and not not_loopback(found), found
