"""``python -m unveil`` runs the CLI."""

from unveil.cli import main

main()
