"""Typed errors of the gateway.

A step that fails with a :class:`Retryable` error is tried again later with backoff; a
:class:`Permanent` one is recorded as failed and not tried again.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of the gateway's errors."""


class InvalidConfig(GatewayError):
    """A setting or the rules file is wrong; the message names it."""


class StepError(GatewayError):
    """A step of the outbox did not succeed."""


class Retryable(StepError):
    """Worth trying again: a remote that is down, busy or not ready yet."""


class NotReady(Retryable):
    """The result is not produced yet: poll again, without counting a failure."""


class Unreachable(Retryable):
    """The remote did not answer: connection refused, dropped or timed out (not an answer it gave)."""


class Permanent(StepError):
    """Trying again will not help: the input or the remote's answer says so."""
