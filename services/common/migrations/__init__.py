"""Alembic migrations of the three databases (incoming agency, outgoing agency, audit).

One environment (``env.py``) and one template serve three independent histories under
``versions/<database>/``; ``services.common.migrate`` picks the history and the target
tables for a database and runs it. Never edit a migration that has been released: add one.
"""
