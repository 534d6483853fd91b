"""The hub's exception tree: the class says what the caller should do next.

HubError
+-- ConfigError            fix the configuration (file, line, key in the message)
+-- SignatureError         reject the request: it is not from who it claims (never retry)
+-- PayloadError           reject the request: verified but not parseable
+-- MappingError           fix the mapping spec or the payload; the event is kept for replay
+-- PluginError            a connector or destination plugin is broken; it is skipped
+-- DeliveryError
    +-- TransientDeliveryError(retry_after)   retry later with backoff
    +-- PermanentDeliveryError                dead-letter with the CRM's message
    +-- AuthDeliveryError                     pause the destination until credentials are fixed
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthDeliveryError",
    "ConfigError",
    "DeliveryError",
    "HubError",
    "Issue",
    "MappingError",
    "PayloadError",
    "PermanentDeliveryError",
    "PluginError",
    "SignatureError",
    "TransientDeliveryError",
]


@dataclass(frozen=True)
class Issue:
    """One problem found in a file: where it is, what is wrong, and how to fix it."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{where}{key}{self.message}{hint}"


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class _IssuesError(HubError):
    """An error that carries every problem found, reported together."""

    def __init__(self, issues: list[Issue] | str) -> None:
        if isinstance(issues, str):
            issues = [Issue(issues)]
        self.issues: list[Issue] = list(issues)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.issues) == 1:
            return str(self.issues[0])
        lines = [f"{len(self.issues)} problems:"]
        lines.extend(f"  - {issue}" for issue in self.issues)
        return "\n".join(lines)


class ConfigError(_IssuesError):
    """The configuration is invalid; the message names file, line and key."""


class MappingError(_IssuesError):
    """A mapping spec is invalid (at load), or a payload cannot be mapped (per event)."""


class PluginError(HubError):
    """A plugin could not be loaded or does not follow the plugin API."""


class SignatureError(HubError):
    """The request's signature is missing, malformed, wrong or stale. Reject with 401."""


class PayloadError(HubError):
    """The request is authentic but its body cannot be parsed. Reject with 400/415."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class DeliveryError(HubError):
    """Writing to a destination failed."""


class TransientDeliveryError(DeliveryError):
    """Retry later; `retry_after` (seconds) is the destination's own hint, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The destination refused the data; retrying will not help. Dead-letter it."""


class AuthDeliveryError(DeliveryError):
    """The destination refused the credentials; pause it until they are fixed."""
