"""The errors that the commands report in one line: each names what is wrong and where.

They live apart from the modules that raise them so that the command line can catch them
without importing Keras.
"""


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


class UsageError(ValueError):
    """A command line that asks for something impossible (an index outside the data, say)."""


class DataError(ValueError):
    """A data set that is missing, unreadable or not MNIST-shaped."""


class ModelFileError(ValueError):
    """A saved model that is missing, unreadable or refused."""


class RunError(RuntimeError):
    """A run folder that cannot be trained into, or read, as asked."""


class TrainingDivergedError(RuntimeError):
    """The loss stopped being a finite number."""


# Every error a command reports in one line: a file, flag or value the user can correct.
REPORTED = (ConfigError, UsageError, DataError, ModelFileError, RunError, TrainingDivergedError)
