"""`python -m hub.cli` runs the CLI."""

from hub.cli.app import main

main()
