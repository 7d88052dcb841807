"""A loopback ClickHouse server (native TCP + HTTP) out of the chdb-core wheel.

`python -m control.stack.clickhouse_server --data-dir D --tcp-port P --http-port Q [--host H]`

clickhouse-local 26.x serves the network protocols only while one query runs, and each `_chdb.query` call
is a whole clickhouse-local run, so the LISTEN statements and a never-ending query must be one call. The
call releases the GIL, leaving the main thread free to handle SIGTERM. Data lives in Atomic databases
under `<data-dir>/db` and survives restarts.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

CONFIG_XML = """<clickhouse>
    <listen_host>{host}</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
</clickhouse>
"""

# sleepEachRow returns 0, so the WHERE drops every row: the query never ends and buffers nothing.
SERVE_SQL = (
    "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "
    "SELECT number FROM system.numbers WHERE sleepEachRow(1) SETTINGS max_block_size = 1"
)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def serve(data_dir: Path, host: str, tcp_port: int, http_port: int, ready_timeout: float = 30.0) -> int:
    work_dir, db_path = data_dir / "server", data_dir / "db"
    work_dir.mkdir(parents=True, exist_ok=True)
    db_path.mkdir(parents=True, exist_ok=True)
    # clickhouse-local reads its ports from config.xml in the working directory.
    (work_dir / "config.xml").write_text(CONFIG_XML.format(host=host, tcp_port=tcp_port, http_port=http_port))
    os.chdir(work_dir)

    # clickhouse-local only logs a failed bind and keeps running, so check the ports first.
    for port in (tcp_port, http_port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                print(f"ERROR: cannot bind {host}:{port}: {exc.strerror}", file=sys.stderr, flush=True)
                return 2

    import chdb._chdb as _chdb_module

    _chdb: Any = _chdb_module  # a C extension without type information

    _chdb.set_signal_handlers_enabled(0)  # keep Python's SIGTERM handler in charge
    stop = threading.Event()
    failure: list[str] = []

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def run_query() -> None:
        try:
            result = _chdb.query(SERVE_SQL, "CSV", path=str(db_path))
            failure.append(result.error_message() or "the serving query ended")
        except Exception as exc:
            failure.append(repr(exc))
        stop.set()

    threading.Thread(target=run_query, name="chdb-serve", daemon=True).start()
    started = time.monotonic()
    while not stop.is_set():
        if _listening(host, tcp_port) and _listening(host, http_port):
            print(f"READY tcp={tcp_port} http={http_port} pid={os.getpid()}", flush=True)
            break
        if time.monotonic() - started > ready_timeout:
            failure.append("listeners did not come up")
            stop.set()
        time.sleep(0.05)
    while not stop.wait(0.5):
        pass
    if failure:
        print(f"ERROR: {failure[0]}", file=sys.stderr, flush=True)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--tcp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    code = serve(args.data_dir.resolve(), args.host, args.tcp_port, args.http_port)
    sys.stdout.flush()
    sys.stderr.flush()
    # Inserts are committed before the client's reply and Atomic metadata is written synchronously, so a
    # hard exit is safe; a normal interpreter exit would tear down the still-running engine and can hang.
    os._exit(code)


if __name__ == "__main__":
    main()
