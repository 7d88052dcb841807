"""One module per domain, each with its own `defs`, merged in orchestration.definitions."""
