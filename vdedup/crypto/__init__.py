"""Crypto layer: AEAD, key derivation, the master key and its wrapping per password."""
