"""The live stack the integration tests and the benchmark both run on: the real local
servers (servers.py), both agency services as processes (agencies.py) and the checker of
the cross-agency invariants over their databases (invariants.py).

It sits below tests/ and bench/ and imports neither (tests/unit/test_architecture.py).
"""
