"""Errors that reach the user as one line and exit code 2."""


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix.

    >>> str(UserError("description is empty — write a few sentences about the domain"))
    'description is empty — write a few sentences about the domain'
    """


class InvalidReply(Exception):
    """An LLM reply that failed validation after every retry; the stage counts and skips it."""
