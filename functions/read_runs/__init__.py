"""read_runs: the read side. RunService Get/List/Watch, with read-only rights to the table."""
