"""Everything vdedup knows about Pinecone (connector layer): see connector.py.

Importing this package imports no SDK; the SDK is imported when a connector is opened.
"""
