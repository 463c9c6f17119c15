"""Model layer: records, record batches and collection schemas. No I/O."""
from .discovery import DiscoveredIndex
from .partition import Partition
from .record import Record, RecordBatch, RecordId, SparseColumn, SparseVector
from .schema import CollectionSchema, IdType, MetadataField, Metric, SparseField, VectorField

__all__ = ["DiscoveredIndex", "Partition", "Record", "RecordBatch", "RecordId", "SparseColumn", "SparseVector",
           "CollectionSchema", "IdType", "MetadataField", "Metric", "SparseField", "VectorField"]
