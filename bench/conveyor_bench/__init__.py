"""Conveyor's benchmark: ``make bench`` (``python -m conveyor_bench``).

Every scenario starts its own servers and services as separate processes, the way
``make up`` runs them, measures, and stops everything again. See docs/performance.md.
"""
