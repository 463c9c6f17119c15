"""Everything vdedup knows about Chroma (connector layer): see connector.py.

Importing this package imports no SDK; the SDK is imported when a connector is opened.
"""
