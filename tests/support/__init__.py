"""Helpers that build real conda channels for the tests."""
