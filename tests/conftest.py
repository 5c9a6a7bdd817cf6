"""Shared fixtures live in tests/fixtures/, one module per area, so each area owns its own."""

pytest_plugins = ["tests.fixtures.corpus", "tests.fixtures.runs", "tests.fixtures.threads",
                  "tests.fixtures.processes"]
