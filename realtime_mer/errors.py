"""The base of every error whose message is meant for the user (shown without a traceback)."""


class UserError(Exception):
    """Bad input or a missing resource; the message says what was wrong and what to do."""
