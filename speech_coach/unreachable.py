"""The error every command reports when a server it needs does not answer: one line naming the server, its
address (never its credentials), why, and the fix."""

from __future__ import annotations

from urllib.parse import urlsplit

LOCAL_FIX = "start the local stack: `make run` (or `speech-coach stack up`)"


def address_of(url: str) -> str:
    """host:port of a server URL (or a plain host:port), without user, password or database."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


class ServerUnreachable(RuntimeError):
    def __init__(self, server: str, url: str, setting: str, cause: str, *, external: bool) -> None:
        self.server, self.address, self.setting = server, address_of(url), setting
        lines = [ln.strip() for ln in cause.splitlines() if ln.strip()]
        # Drivers often end their message with the address again: it is already named once.
        self.cause = lines[0][:200].removesuffix(f" ({self.address})") if lines else "no answer"
        # An external server is the operator's to check; the local one is started by the stack.
        external_fix = f"check that server and {setting}, or unset {setting} to use the local stack"
        self.fix = external_fix if external else LOCAL_FIX
        super().__init__(f"{server}: cannot connect to {self.address} ({self.cause}) - fix: {self.fix}")
