"""A quick reachability check before any download, so that an offline machine fails in seconds.

Libraries that download (urllib via ``torch.hub``, ``huggingface_hub``) retry with back-off or
wait on unanswered connections for minutes when the network is down; ctxfusion first opens
one TCP connection to the URL's host, bounded by :data:`PROBE_TIMEOUT_S` seconds (name lookup
included), and reports the file to place by hand when that fails.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlsplit

#: seconds allowed for the name lookup and TCP connection of the probe
PROBE_TIMEOUT_S = float(os.environ.get("CTXFUSION_PROBE_TIMEOUT", "5"))


def unreachable_reason(url: str, timeout: float | None = None) -> str | None:
    """Why ``url``'s host cannot be reached now (one short phrase), or None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ftp"):
        return None  # file:// and the like: nothing to probe
    if not parts.hostname:
        return f"{url!r} names no host"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    limit = PROBE_TIMEOUT_S if timeout is None else timeout
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=limit):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    # getaddrinfo ignores socket timeouts: a daemon thread bounds the name lookup too.
    thread = threading.Thread(target=probe, daemon=True, name="ctxfusion-probe")
    thread.start()
    thread.join(limit)
    if not outcome:
        return f"no answer from {parts.hostname} within {limit:g} s"
    reason = outcome[0]
    return None if reason is None else f"cannot reach {parts.hostname} ({reason})"
