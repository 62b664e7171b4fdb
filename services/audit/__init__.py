"""The audit process: an independent consumer of the audit topic with its own store, a
hash chain per case and side, verification and export of a case's trail for a dispute."""
