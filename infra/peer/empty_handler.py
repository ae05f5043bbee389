"""The Python floor of `nudge bench`'s cold starts: a handler that answers with its event and
imports nothing, run under awslambdaric like the peer's two handlers."""


def handler(event, context):
    """Return the event unchanged."""
    return event
