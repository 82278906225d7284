"""Benchmarks for condarchive: the service against the bare solver and plain downloads.

Run ``python -m bench`` (or ``python -m bench --smoke``); see bench/README.md.
"""
