"""Structured logging: JSON lines with secrets redacted wherever they appear (traces use the same redactor)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from types import MappingProxyType
from typing import Any

import structlog

REDACTED = "***"


class SecretRedactor:
    """A structlog processor that replaces every configured secret value in any string field."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def scrub(self, value: Any) -> Any:
        """`value` with every secret replaced, strings inside dicts, lists and tuples included."""
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict | MappingProxyType):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        return value

    def __call__(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event_dict
        return {k: self.scrub(v) for k, v in event_dict.items()}


def configure_logging(level: str = "INFO", json_output: bool = True, secrets: Iterable[str] = ()) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        SecretRedactor(secrets),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
