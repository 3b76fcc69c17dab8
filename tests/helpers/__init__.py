"""Pytest plugins and helpers shared by the tests (leak checks); the fakes are in tests/fakes/."""
