"""Emulators of provider HTTP APIs, used only by the tests and the benchmarks (never installed
with vdedup): `pinecone_emulator` serves Pinecone's documented REST API and
`weaviate_emulator` Weaviate's REST API, each to the provider's official SDK.

Importable as `emulators` with tests/ on sys.path: pytest's `pythonpath` setting
(pyproject.toml) puts it there, and benchmarks insert it themselves."""
