"""The one exception type our command-line tools turn into a one-line message instead of a traceback."""


class QBertError(Exception):
    """A problem with the user's input (file, config, dataset, name) that the user can fix.

    The message is one line and names the file or key at fault; CLIs print ``error: <message>``
    and exit with status 2.
    """
