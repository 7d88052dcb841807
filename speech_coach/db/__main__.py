"""`python -m speech_coach.db upgrade`: the operational database's migrations, for images without the platform's CLI.

The migrations job runs it in the ingest image; `speech-coach db upgrade` does the same on one machine.
"""

from __future__ import annotations

import argparse

from speech_coach.db.migrate import current_revision, upgrade
from speech_coach.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m speech_coach.db", description="The operational database.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="apply the migrations up to head (idempotent)")
    parser.parse_args(argv)
    settings = Settings()
    upgrade(settings)
    print(f"Operational database at revision {current_revision(settings)}.")


if __name__ == "__main__":
    main()
