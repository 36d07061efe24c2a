"""The e2e suite uses the session-wide `live` gateway (tests/live.py, tests/conftest.py)."""
