"""The one exception type for user errors: the CLI prints its message on one line and exits 2."""


class MultisegError(Exception):
    """A problem with the user's input (a file, a key, a value) rather than a bug in multiseg.

    The message must name the file or key and say what is wrong, on one line.
    """
