"""The files export's declared facts (connector layer). See descriptor.py.

Its capabilities say what an export holds (one unnamed dense vector, str or int ids, JSON
metadata, documents and uris; no namespaces), for the connector contract; they are not a
translation target (`translation_target=False`): an export is restored only from its own
snapshots, never from another provider's. No SDK beyond numpy, which vdedup itself needs.
"""
from __future__ import annotations

from ..descriptor import JSON_TYPES, Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "files", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN}), frozenset({IdType.STRING, IdType.INT}),
    max_dense=1, named_vectors=False, multivector=False, sparse=False,
    dtypes=frozenset({"float32", "float16", "float64", "int8", "uint8"}),
    metadata_types=JSON_TYPES, nested_metadata=True, null_metadata=True, namespace_kind=None,
    documents=True, uris=True, translation_target=False)

DESCRIPTOR = Descriptor(
    name="files", title="Files (vectors.npy + records.jsonl)",
    connector="vdedup.connectors.files.connector:FilesConnector",
    extra="files", sdk=None, aliases=("npy",), account_url="files:///abs/path/to/dir",
    url_forms=("files:///abs/path/to/dir[?collection=NAME&metric=cosine|euclidean|dot]",),
    capabilities=CAPABILITIES, asset=False)
