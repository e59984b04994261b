"""``python -m sayso`` runs the command line."""

from .cli import main

main()
