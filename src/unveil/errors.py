"""The one error type for user mistakes: the CLI prints its message as one sentence and exits with 2."""


class UnveilError(Exception):
    """A problem the user can fix (bad input, bad option, unwritable output).

    Raise it with a complete sentence that names the offending file or option; never for programming bugs.
    """
