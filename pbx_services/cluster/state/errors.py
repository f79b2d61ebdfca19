"""What goes wrong with a state store."""


class StateStoreUnavailable(Exception):
    """The store cannot be reached now (Redis down, failing over, timing out); the caller
    answers what it can (500 with Retry-After to a REGISTER) and tries again later."""
