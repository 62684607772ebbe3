"""Consumers: who is calling (keys), what they may use, and their budgets."""

from extproc.consumers.auth import Authenticator, make_authenticator

__all__ = ["Authenticator", "make_authenticator"]
