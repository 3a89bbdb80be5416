"""The loopback servers these tests start are fixtures of the whole suite: ``server_fixtures.py``,
imported by ``tests/conftest.py``."""
