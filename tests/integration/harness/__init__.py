"""Test harness for dproxy's integration tests (fixtures live in conftest.py)."""
