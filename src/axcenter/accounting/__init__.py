"""Accounting: usage rated to won, holds and charges against allocations, budgets, reports.

The money rules themselves are in ``model.money``; ``docs/accounting.md`` explains them.
"""
