"""The one exception type users see: its message is a single line that says what to do."""


class SpikemergeError(Exception):
    """Bad input or set-up. The CLI prints the message alone and exits non-zero."""


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's message folded onto one line (a user sees one line, never a traceback)."""
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return text[:limit] or type(exc).__name__
