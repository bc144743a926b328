"""Errors users see: each names the file, row or key at fault and what was expected."""


class KddadError(Exception):
    """Base for every error the pipeline reports to a user without a traceback."""


class ConfigError(KddadError):
    """The composed configuration has an unknown key or an impossible value."""


class DetectorError(KddadError):
    """A detector file is missing, tampered with, or does not fit the data it is given."""


class DataError(KddadError):
    """An input data file does not have the expected KDD layout or values."""


class DownloadError(KddadError):
    """No source gave a verified copy of a raw data file."""


class TrackingError(KddadError):
    """The MLflow tracking store cannot be reached or used."""


class OutputError(KddadError):
    """A stage cannot write where its outputs go (permissions, a file where a folder should be)."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: raised in the main thread so every ``finally`` and context manager
    cleans up (temporary files, the MLflow run). A BaseException, like KeyboardInterrupt: no
    ``except Exception`` that records a failure and carries on (a sweep job, a retry) swallows it."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
