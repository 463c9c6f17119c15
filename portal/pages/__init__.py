"""One module per group of pages; each exports `routes` (portal layer)."""
