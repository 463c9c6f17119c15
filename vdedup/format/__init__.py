"""Format layer: versioned encode/decode of every stored object. No I/O."""
