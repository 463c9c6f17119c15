"""Connector layer: one module per provider, a registry, and the URL grammar."""
from .base import Connector
from .registry import open_connector, register
from .url import SourceURL, parse_url

__all__ = ["Connector", "open_connector", "register", "SourceURL", "parse_url"]
