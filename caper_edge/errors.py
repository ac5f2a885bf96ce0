"""Exceptions that the command line turns into a one-line reason and a non-zero exit code."""

from __future__ import annotations


class CaperError(Exception):
    """An error a user can act on: the message names the thing, the value and what was expected."""

    exit_code = 1


class ConfigError(CaperError, ValueError):
    """A configuration file or key is invalid."""

    exit_code = 2


class InputError(CaperError):
    """An input file, stream or device is missing, truncated or corrupt."""

    exit_code = 3


class EngineError(CaperError, ValueError):
    """A model or engine file cannot be loaded or built, or a call's tensors do not match it."""

    exit_code = 4
