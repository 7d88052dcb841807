"""The local stack: real PostgreSQL, Kafka-protocol broker, ClickHouse and S3 servers from pip wheels."""

from control.stack.base import PartStatus, StackError
from control.stack.manager import Stack, UpResult

__all__ = ["PartStatus", "Stack", "StackError", "UpResult"]
