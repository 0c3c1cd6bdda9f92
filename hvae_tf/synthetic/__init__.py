"""Synthetic data in MovieLens' file layouts: a tool for tests, benchmarks and an offline start.

It writes raw files that go through the same TFDS builder as a real release; nothing in the data
path imports it except the `--dataset generated` option.
"""
