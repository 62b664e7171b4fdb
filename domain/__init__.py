"""Pure domain rules for the transfer and continuation of basic medical insurance.

Nothing in this package performs network or database I/O, reads the clock, or logs.
Files are read only by the explicit ``load_*`` / ``build_*`` functions. Rule ids (R1..R28)
refer to ``shared/domain/transfer-rules.md``.
"""
