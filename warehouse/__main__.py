"""`python -m warehouse ...`: the warehouse's commands (migrate, ingest, dbt, generate) without the platform's CLI.

The ingest image runs these (`python -m warehouse ingest --follow`, `python -m warehouse migrate`): its set has
what the warehouse needs, not the `speech-coach` CLI's local stack (control/, a floor above the runtimes).
"""

from warehouse.cli import app

app(prog_name="python -m warehouse")
