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


# What reading a JSON file of the user's can raise: unreadable, not UTF-8, not JSON, or nested
# deeper than the parser's recursion allows.
# ValueError covers json's decoding errors and a whole number of more digits than Python converts.
JSON_READ_ERRORS = (OSError, ValueError, RecursionError)

# Every error a command reports in one line: a file, flag or value the user can correct.
REPORTED = (ConfigError, UsageError, DataError, ModelFileError, RunError, TrainingDivergedError)


def out_of_memory_message(error: BaseException) -> str | None:
    """One line for an error that says the machine ran out of memory, else None.

    Each backend says it its own way (TensorFlow's ``ResourceExhaustedError``, XLA's
    ``RESOURCE_EXHAUSTED``, PyTorch's allocator), usually from sizes the user chose (a latent of
    a billion units, a manifold of 2,000 × 2,000 digits), so it is reported as what it is.
    """
    text = str(error)
    signs = ("RESOURCE_EXHAUSTED", "out of memory", "can't allocate memory", "OOM when allocating")
    named = type(error).__name__ in ("MemoryError", "ResourceExhaustedError", "OutOfMemoryError")
    if not named and not any(sign.lower() in text.lower() for sign in signs):
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    detail = f" ({first[:160]})" if first else ""
    return f"ran out of memory{detail}; choose smaller sizes"
