"""Persistence: SQLAlchemy tables, Alembic migrations, and the transactions that change them.

SQLite (WAL, one file) is the default; PostgreSQL is selected by URL. Dialect differences
live in ``db.py`` and nowhere else.
"""
