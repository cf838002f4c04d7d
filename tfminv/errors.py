"""Exceptions that carry a message meant for the user, not a stack trace."""


class TfminvError(Exception):
    """Base class: bad input, missing data, misconfiguration. Binaries print only the message."""


class DataError(TfminvError):
    """A raw or built dataset is missing, malformed, or does not match what was expected."""


class ConfigError(TfminvError):
    """A flag, config value or argument is invalid."""


class TrainingError(TfminvError):
    """Training could not produce a usable model (e.g. the loss stayed non-finite)."""


class OracleError(TfminvError):
    """A target model or prediction API answered badly or not at all."""


class BudgetExceeded(OracleError):
    """A query budget would be exceeded by the next request."""


def first_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (or of a string), at most `limit`
    characters; the exception's type name when the message is empty. One home for the
    'name the cause in one line' recipe of every error that wraps a library exception."""
    text = exc if isinstance(exc, str) else str(exc)
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return "" if isinstance(exc, str) else type(exc).__name__
