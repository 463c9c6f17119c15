"""Connector layer: one package per provider (vdedup/connectors/<provider>/), its declared
descriptor, the registry, credentials and the URL grammar. Importing it imports no SDK."""
from .base import Connector
from .credentials import NO_CREDENTIALS, Credentials
from .descriptor import Capabilities, Descriptor
from .registry import credentials_for, descriptors, lookup, open_connector, register
from .url import SourceURL, parse_url

__all__ = ["Connector", "Credentials", "NO_CREDENTIALS", "Capabilities", "Descriptor",
           "credentials_for", "descriptors", "lookup", "open_connector", "register",
           "SourceURL", "parse_url"]
