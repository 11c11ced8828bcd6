"""The ``faceledger`` command line: one module per group of commands."""
