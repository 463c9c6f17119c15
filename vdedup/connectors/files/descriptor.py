"""The files export's declared facts (connector layer). See descriptor.py.

No capabilities: an export is restored only from its own snapshots, never as the target of a
translation from another provider. No SDK beyond numpy, which vdedup itself needs.
"""
from __future__ import annotations

from ..descriptor import Descriptor

DESCRIPTOR = Descriptor(
    name="files", title="Files (vectors.npy + records.jsonl)",
    connector="vdedup.connectors.files.connector:FilesConnector",
    extra="files", sdk=None, aliases=("npy",), account_url="files:///abs/path/to/dir",
    url_forms=("files:///abs/path/to/dir[?collection=NAME&metric=cosine|euclidean|dot]",),
    asset=False)
