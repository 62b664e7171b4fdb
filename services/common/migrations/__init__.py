"""Alembic migrations of the three databases (incoming agency, outgoing agency, audit).

One environment (``env.py``) and one template serve three independent histories under
``versions/<database>/``; ``services.common.migrate`` runs the history and the target
tables its caller hands it, Alembic's command line finds them in the repository's
``alembic.ini``. Never edit a migration that has been released: add one.
"""
