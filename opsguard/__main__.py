"""`python -m opsguard` is the same as the `opsguard` command."""

from opsguard.cli import main

if __name__ == "__main__":
    main()
