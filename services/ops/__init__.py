"""Operator tools that read both agencies' records: the remittance reconciliation."""
