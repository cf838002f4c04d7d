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
