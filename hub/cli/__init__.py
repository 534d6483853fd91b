"""The `crmhub` command line. Command groups live in one module each."""

from hub.cli.app import app, main

__all__ = ["app", "main"]
