"""Errors a command raises for its user: the CLI prints each as one line and exits with its code."""
from __future__ import annotations


class UsageError(Exception):
    """A bad flag, a missing directory, a refused request: one line, exit 2."""


class DatabaseUnavailable(Exception):
    """The catalog's database did not answer: one line, exit 1 (as every command says it)."""
