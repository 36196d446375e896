"""One module per command (group); cli.py imports each only when its command runs."""
