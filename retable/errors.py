"""Errors that reach the user as one line and exit code 2."""


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix.

    >>> str(UserError("description is empty — write a few sentences about the domain"))
    'description is empty — write a few sentences about the domain'
    """


class EndpointDown(UserError):
    """An LLM endpoint did not answer usably (no connection, timeout, HTTP 429/5xx after retries, not an
    OpenAI reply). With several endpoints the pool fails over to another; with one it is the user's error."""


class InvalidReply(Exception):
    """An LLM reply that failed validation after every retry; the stage counts and skips it."""


class BudgetExhausted(Exception):
    """The next LLM call would take the run past --budget-tokens. Raised before the call; finished
    stages and every reply so far are kept."""

    def __init__(self, used: int, budget: int):
        super().__init__(f"token budget {budget:,} reached ({used:,} new tokens used)")
        self.used, self.budget = used, budget

    def __reduce__(self):  # crosses process boundaries (Ray workers) intact
        return BudgetExhausted, (self.used, self.budget)
