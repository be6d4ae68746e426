"""The Lambda functions. Each subpackage is one function: a thin ``handler`` module over its own
domain logic, with ``runplane`` (the shared layer) underneath."""
