"""Chroma's declared facts (connector layer; imports no SDK). See descriptor.py."""
from __future__ import annotations

from ..descriptor import SCALARS, Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "chroma", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN}), frozenset({IdType.STRING}),
    max_dense=1, named_vectors=False, multivector=False, sparse=False,
    dtypes=frozenset({"float32"}), metadata_types=SCALARS | {"list"},
    nested_metadata=False, null_metadata=False, namespace_kind=None, documents=True, uris=True,
    exact_floats=False, exact_cosine=False, empty_dims=False,
    metric_names={M.COSINE: "cosine", M.DOT: "ip", M.EUCLIDEAN: "l2"})

DESCRIPTOR = Descriptor(
    name="chroma", title="Chroma", connector="vdedup.connectors.chroma.connector:ChromaConnector",
    extra="chroma", sdk="chromadb", secret_env=("CHROMA_API_KEY",), secret_label="API key",
    account_url="chroma://HOST:PORT",
    url_forms=("chroma:///abs/path/to/persist-dir[?collection=C]",
               "chroma://HOST:PORT[?tenant=T&database=D&ssl=1&collection=C]"),
    capabilities=CAPABILITIES)
