"""Errors that carry a message meant for a person: what went wrong and what to do.

The CLI prints ``str(error)`` on one line and exits non-zero; nothing secret goes into a message.
"""


class StaxError(Exception):
    """Base of every error the CLI reports as one line instead of a traceback."""

    exit_code = 1


class UsageError(StaxError):
    """Bad arguments or input: nothing was run or changed."""

    exit_code = 2


class ConfigError(StaxError):
    """The environment or local state is not usable as it is (e.g. a wrong master key)."""


class SettingError(ConfigError):
    """A ``STAX_*`` variable is malformed or refused: nothing was run or changed."""

    exit_code = 2


class CredentialError(StaxError):
    """A stored credential could not be read, decrypted or verified."""


class ProviderError(StaxError):
    """A provider API refused a request or could not be reached after retries."""

    retryable = False  # True when the same request may succeed later (an outage outlasted retries)

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint
