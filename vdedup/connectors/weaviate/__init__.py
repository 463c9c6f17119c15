"""Everything vdedup knows about Weaviate (connector layer): see connector.py.

Importing this package imports no SDK; the SDK is imported when a connector is opened.
"""
