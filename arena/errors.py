"""Errors a person can act on; the message is shown as is, the code is for clients and tests."""


class ArenaError(Exception):
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(ArenaError):
    code = "not_found"


class NotAllowed(ArenaError):
    code = "not_allowed"


class RateLimited(ArenaError):
    code = "rate_limited"


class NoModelsAvailable(ArenaError):
    code = "no_models"
