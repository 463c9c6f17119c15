"""vdedup: schema-aware, content-addressed, deduplicating, encrypted backup for vector databases.

Importing vdedup starts nothing and imports no database SDK.
"""
__version__ = "0.1.0"
