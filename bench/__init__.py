"""Benchmarks of the design targets, each printing its figures beside a baseline measured in the same run.

Run all with ``python -m bench`` (one sandbox shared by all) or one with ``python -m bench NAME``.
"""
