"""`python -m rag` runs the CLI."""

from rag.ui.cli import main

main()
