"""The one exception type users see: its message is a single line that says what to do."""


class SpikemergeError(Exception):
    """Bad input or set-up. The CLI prints the message alone and exits non-zero."""
