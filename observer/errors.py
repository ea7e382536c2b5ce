"""Observer's exception hierarchy, and the one place that decides what is retryable."""

from __future__ import annotations


class ObserverError(Exception):
    """Root of every error Observer raises on purpose."""


class ConfigError(ObserverError):
    """A configuration value is missing or invalid; the message names key, value, reason."""


class CredentialsError(ObserverError):
    """App key or secret missing or malformed (the message never contains them)."""


class NotAvailableError(ObserverError):
    """A feature that cannot run here (a missing binary, an unfinished command)."""
