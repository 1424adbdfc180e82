"""`python -m raydist.cli ...` runs the command line."""

from raydist.cli import main

main()
