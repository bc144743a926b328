"""Errors users see: each names the file, row or key at fault and what was expected."""


class KddadError(Exception):
    """Base for every error the pipeline reports to a user without a traceback."""


class ConfigError(KddadError):
    """The composed configuration has an unknown key or an impossible value."""


class DataError(KddadError):
    """An input data file does not have the expected KDD layout or values."""


class DownloadError(KddadError):
    """No source gave a verified copy of a raw data file."""


class TrackingError(KddadError):
    """The MLflow tracking store cannot be reached or used."""


class OutputError(KddadError):
    """A stage cannot write where its outputs go (permissions, a file where a folder should be)."""
