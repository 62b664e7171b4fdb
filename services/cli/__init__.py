"""The clerk and operator command line: ``python -m services.cli --help``.

It talks to the two agency APIs over HTTP (sending ``X-Api-Key``), and reads the
databases directly only for the operator's reconciliation and audit verification.
"""
