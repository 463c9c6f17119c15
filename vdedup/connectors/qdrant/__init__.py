"""Everything vdedup knows about Qdrant (connector layer): see connector.py.

Importing this package imports no SDK; the SDK is imported when a connector is opened.
"""
