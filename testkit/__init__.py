"""Helpers that the tests and the benches share: one copy, imported by both.

Neither ``tests`` nor ``bench`` is imported by the other for these; anything
here is small, typed and free of pytest.
"""
