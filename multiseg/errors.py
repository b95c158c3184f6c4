"""The one exception type for user errors: the CLI prints its message on one line and exits 2."""


class MultisegError(Exception):
    """A problem with the user's input (a file, a key, a value) rather than a bug in multiseg.

    The message must name the file or key and say what is wrong, on one line.
    """


class Terminated(Exception):
    """A run stopped on SIGTERM after writing its checkpoint; the CLI exits 143 (128 + 15).

    The message (one line, empty on the ranks other than 0) says where it stopped and how to resume.
    """
