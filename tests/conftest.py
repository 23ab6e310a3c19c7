"""Fixtures shared by the whole suite; the real-service fixtures live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.docker_engine",
    "tests.fixtures.coordinator",
]
