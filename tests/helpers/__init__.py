"""Plain functions and constants the tests share (fixtures live in tests/conftest.py)."""
