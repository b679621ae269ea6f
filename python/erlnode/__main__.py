"""`python -m erlnode`: the command line (see docs/cli.md)."""

from ._cli import run

if __name__ == "__main__":
    run()
