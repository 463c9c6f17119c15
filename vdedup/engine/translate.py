"""Cross-provider translation: a plan built from the source schema and the target's
capabilities, and the record transformation it implies (engine layer).

Rules: nothing is changed silently. Every difference is a step of the plan, marked lossless
(reversible: a restore back to the original provider gives the original records), inexact
(the target engine's own float rounding, which it applies to every write and which no
option can avoid: the vectors of a cosine index normalised, float metadata one ulp off;
each with a bound within which the written values stay) or lossy; inexact steps go ahead
unless --exact refuses them, lossy ones only when the user accepts the loss with an option
(--metric, --vector, --drop-sparse, --allow-lossy); what cannot be translated at all is an
error. Original ids that the target cannot hold are mapped
deterministically (UUIDv5 for Qdrant/Weaviate, decimal text for string-id providers) and kept
in the metadata field `_vdedup_id`, which a later translation back reads to restore them.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TranslationRefused
from ..model import CollectionSchema, IdType, MetadataField, Metric, Record, SparseField, VectorField
from .capabilities import CAPABILITIES, Capabilities, canonical_provider, capabilities

ORIGINAL_ID = "_vdedup_id"
DOCUMENT = "_vdedup_document"
URI = "_vdedup_uri"
ID_NAMESPACE = uuid.UUID("6f1d2a9e-4b1c-5d7a-9e3f-0a1b2c3d4e5f")
NS_SEPARATOR = "__"
SPARSE_NAME = "sparse"      # the name an unnamed sparse vector gets where every sparse vector is named
MAX_SAFE_INT = 2 ** 53
# Bounds of the inexact steps: how far a written value may be from the planned one.
DIRECTION_BOUND = 1e-6      # largest component difference of the unit vectors (float32 rounding)
FLOAT_BOUND = 1e-12         # largest relative difference of a float metadata value (a few ulps)
# How a target rounds the vectors of a cosine index (the inexact step's words).
COSINE_ROUNDING = {
    "qdrant": "stores the vectors of a cosine index normalised to unit length (their directions, "
              "which cosine search uses, are kept to float32 rounding; their lengths are not)",
    "chroma": "hands the vectors of a cosine index back a few float32 ulps off what was written "
              "(directions kept to float32 rounding)",
}


@dataclass
class Step:
    part: str          # metric, ids, vectors, sparse, metadata, documents, namespaces
    detail: str
    lossless: bool
    accepted_by: str | None = None     # the option by which the user asked for this loss
    inexact: bool = False              # the target's own rounding, within `bound` (not lossless)
    bound: float | None = None
    field: str | None = None           # the vector or metadata key an inexact step is about

    @property
    def kind(self) -> str:
        return "lossless" if self.lossless else "inexact" if self.inexact else "lossy"

    def to_dict(self) -> dict[str, Any]:
        d = {"part": self.part, "detail": self.detail, "lossless": self.lossless, "kind": self.kind,
             "accepted_by": self.accepted_by}
        if self.inexact:
            d.update(bound=self.bound, field=self.field)
        return d


def id_kind(rid: Any) -> IdType:
    if isinstance(rid, int):
        return IdType.INT
    try:
        if str(uuid.UUID(rid)) == rid:
            return IdType.UUID
    except (ValueError, AttributeError, TypeError):
        pass
    return IdType.STRING


def accepts_id(caps: Capabilities, kind: IdType) -> bool:
    """Whether the target holds ids of this kind as they are (a UUID is also a string)."""
    return kind in caps.id_types or (kind == IdType.UUID and IdType.STRING in caps.id_types)


def _accepts(caps: Capabilities, rid: Any) -> bool:
    if isinstance(rid, int) and not caps.int_ids[0] <= rid <= caps.int_ids[1]:
        return False
    if isinstance(rid, str) and caps.id_forbidden_chars and any(c in rid for c in caps.id_forbidden_chars):
        return False
    return accepts_id(caps, id_kind(rid))


def encode_original_id(rid: Any) -> str:
    return f"int:{rid}" if isinstance(rid, int) else f"str:{rid}"


def decode_original_id(text: Any) -> Any:
    if isinstance(text, str) and text.startswith("int:"):
        return int(text[4:])
    if isinstance(text, str) and text.startswith("str:"):
        return text[4:]
    return None


@dataclass
class TranslationPlan:
    source_provider: str
    target_provider: str
    collection: str
    target_schema: CollectionSchema
    steps: list[Step] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    vector_map: dict[str, str] = field(default_factory=dict)     # source name -> target name
    dense_dtypes: dict[str, str] = field(default_factory=dict)   # target name -> dtype to cast to
    namespace_as_collection: bool = False
    fold: tuple[str, str] | None = None                          # (collection, namespace) to write into
    sparse_map: dict[str, str] = field(default_factory=dict)     # source name -> target name
    caps: Capabilities | None = None
    identity: bool = False
    source_schema: CollectionSchema | None = None

    @property
    def lossless(self) -> bool:
        return not self.errors and all(s.lossless for s in self.steps)

    @property
    def fidelity(self) -> str:
        """exact (every step lossless), inexact (no lossy step, some of the target's own
        rounding) or lossy."""
        if any(s.kind == "lossy" for s in self.steps) or self.errors:
            return "lossy"
        return "inexact" if self.inexact_steps else "exact"

    @property
    def inexact_steps(self) -> list[Step]:
        return [s for s in self.steps if s.inexact]

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "source_provider": self.source_provider,
                "target_provider": self.target_provider, "lossless": self.lossless,
                "fidelity": self.fidelity,
                "metric": [f"{v.name or '(default)'}: {v.metric.value}" for v in self.target_schema.vectors],
                "steps": [s.to_dict() for s in self.steps], "errors": self.errors}

    def target_id(self, rid: Any, metadata: Any) -> Any:
        """The id a record of the snapshot has in the target (what `transform` gives it)."""
        if self.identity:
            return rid
        meta = metadata if isinstance(metadata, dict) else {}
        return self._map_id(rid, decode_original_id(meta.get(ORIGINAL_ID)))[0]

    def _map_id(self, rid: Any, original: Any) -> tuple[Any, bool]:
        """(target id, whether the original id goes into the metadata field `_vdedup_id`)."""
        caps = self.caps
        assert caps is not None
        if original is not None and _accepts(caps, original):
            return original, False                            # back to the original id
        keep = rid if original is None else original
        store = original is not None or not _accepts(caps, rid)
        if not _accepts(caps, rid):
            if IdType.UUID in caps.id_types or (isinstance(rid, str) and IdType.STRING in caps.id_types):
                rid = str(uuid.uuid5(ID_NAMESPACE, encode_original_id(keep)))
            elif IdType.STRING in caps.id_types:
                rid = str(rid)
            else:
                rid = int(uuid.uuid5(ID_NAMESPACE, encode_original_id(keep)).int >> 65)
        return rid, store

    def target_location(self, name: str, namespace: str) -> tuple[str, str]:
        """Where a namespace of the source collection goes: (target collection, target namespace)."""
        if self.fold is not None:
            return (self.fold[0] if name == self.collection else name), self.fold[1]
        if self.namespace_as_collection and namespace:
            return f"{name}{NS_SEPARATOR}{namespace}", ""
        return name, namespace

    # ---- records ----------------------------------------------------------------------
    def transform(self, rec: Record) -> Record:
        if self.identity:
            return rec
        caps = self.caps
        assert caps is not None
        meta = dict(rec.metadata) if isinstance(rec.metadata, dict) else {}
        original = decode_original_id(meta.pop(ORIGINAL_ID, None))
        rid, store = self._map_id(rec.id, original)
        if store:
            meta[ORIGINAL_ID] = encode_original_id(rec.id if original is None else original)
        doc, uri = rec.document, rec.uri
        if DOCUMENT in meta and caps.documents:
            doc = meta.pop(DOCUMENT)
        if URI in meta and caps.uris:
            uri = meta.pop(URI)
        if doc is not None and not caps.documents:
            meta[DOCUMENT] = doc
            doc = None
        if uri is not None and not caps.uris:
            meta[URI] = uri
            uri = None
        vectors = {}
        for name, arr in rec.vectors.items():
            if name in self.vector_map:
                tname = self.vector_map[name]
                want = self.dense_dtypes.get(tname)
                vectors[tname] = _cast(arr, want) if want else arr
        sparse = {self.sparse_map[n]: sv for n, sv in rec.sparse.items() if n in self.sparse_map}
        return Record(rid, vectors, sparse, _meta(meta, caps) or None, doc, uri)


def _cast(arr: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float32" and arr.dtype == np.uint16:      # bfloat16 bits -> float32, exact
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32) if dtype == "float32" else arr


def _meta_value(v: Any, caps: Capabilities, top: bool) -> tuple[bool, Any]:
    """(keep, value) for one metadata value under the target's rules."""
    if v is None:
        return caps.null_metadata, None
    if isinstance(v, bool) or isinstance(v, str):
        return True, v
    if isinstance(v, int):
        return True, (v if "int" in caps.metadata_types else float(v))
    if isinstance(v, float):
        return True, v
    if isinstance(v, dict):
        if caps.nested_metadata:
            return True, {k: x for k, (keep, x) in ((k, _meta_value(x, caps, False)) for k, x in v.items()) if keep}
        return True, json.dumps(v, default=str, sort_keys=True)
    if isinstance(v, (list, tuple)):
        if caps.provider == "pinecone":
            return True, [x if isinstance(x, str) else json.dumps(x, default=str) for x in v]
        items = [x for keep, x in (_meta_value(x, caps, False) for x in v) if keep]
        return True, items
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return True, (v if "datetime" in caps.metadata_types and isinstance(v, dt.datetime) else v.isoformat())
    if isinstance(v, (decimal.Decimal, uuid.UUID, dt.timedelta)):
        return True, (v if type(v).__name__.lower() in caps.metadata_types else str(v))
    if isinstance(v, bytes):
        return True, (v if "bytes" in caps.metadata_types else v.hex())
    return True, v


def _meta(meta: dict[str, Any], caps: Capabilities) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        keep, x = _meta_value(v, caps, True)
        if keep:
            out[k] = x
    return out


# ---- planning -----------------------------------------------------------------------------

def build_plan(schema: CollectionSchema, target_provider: str, metric: Metric | None = None,
               vector: str | None = None, drop_sparse: bool = False, allow_lossy: bool = False,
               fold_namespaces: bool = False, exact: bool = False) -> TranslationPlan:
    """The plan for writing a collection backed up from `schema.provider` into `target_provider`.

    A lossy step the user did not ask for by an option (--vector, --drop-sparse, --metric)
    makes the plan refused unless `allow_lossy`; an inexact step (the target's own rounding)
    only when `exact`. A restore into the same provider needs no translation, but the
    target's rounding still applies: its plan is the identity with the inexact steps."""
    if canonical_provider(schema.provider) == canonical_provider(target_provider) and metric is None \
            and vector is None and not drop_sparse:
        plan = TranslationPlan(schema.provider, target_provider, schema.name, schema, identity=True,
                               source_schema=schema)
        caps = CAPABILITIES.get(canonical_provider(target_provider))
        if caps is not None:
            for v in schema.vectors:
                _cosine_rounding(plan, v.name or "(default)", v.name, v.metric, caps)
            for f in schema.metadata_fields:
                _float_rounding(plan, f, _field_types(f), caps)
        _refuse_inexact(plan, exact)
        return plan
    caps = capabilities(target_provider)
    plan = TranslationPlan(schema.provider, target_provider, schema.name, schema, caps=caps,
                           source_schema=schema)
    new_vectors = _plan_dense(plan, schema, caps, metric, vector)
    sparse = _plan_sparse(plan, schema, caps, drop_sparse)
    if target_provider == "pinecone" and sparse and any(v.metric != Metric.DOT for v in new_vectors):
        plan.errors.append("Pinecone keeps sparse values only in dotproduct indexes: give --metric dot "
                           "(or --drop-sparse)")
    _plan_ids(plan, schema, caps)
    fields = _plan_metadata(plan, schema, caps)
    name, namespaces = _plan_namespaces(plan, schema, caps, fold_namespaces)
    plan.target_schema = CollectionSchema(
        provider=target_provider, name=name,
        id_type=schema.id_type if accepts_id(caps, schema.id_type)
        else sorted(caps.id_types, key=lambda t: t.value)[0],
        vectors=tuple(new_vectors), sparse=tuple(sparse), metadata_fields=tuple(fields),
        namespaces=tuple(namespaces),
        has_documents=caps.documents and (schema.has_documents or _declares(schema, DOCUMENT)),
        has_uris=caps.uris and (schema.has_uris or _declares(schema, URI)), options={},
        extras={"translated_from": {"provider": schema.provider, "collection": schema.name}})
    unasked = [s for s in plan.steps if s.kind == "lossy" and s.accepted_by is None]
    if unasked and not allow_lossy:
        plan.errors.append(f"{len(unasked)} step(s) of the translation lose information "
                           f"({'; '.join(s.detail for s in unasked)}): pass --allow-lossy to accept")
    elif unasked:
        for s in unasked:
            s.accepted_by = "--allow-lossy"
    _refuse_inexact(plan, exact)
    return plan


def _refuse_inexact(plan: TranslationPlan, exact: bool) -> None:
    inexact = plan.inexact_steps
    if exact and inexact:
        plan.errors.append(f"{len(inexact)} step(s) would not write the values exactly "
                           f"({'; '.join(s.detail for s in inexact)}): --exact refuses them")


def _cosine_rounding(plan: TranslationPlan, label: str, name: str, metric: Metric, caps: Capabilities) -> None:
    """The inexact step of a target that rounds the vectors of a cosine index."""
    if metric == Metric.COSINE and not caps.exact_cosine:
        how = COSINE_ROUNDING.get(caps.provider, "changes the vectors of a cosine index in their "
                                  "last bits (directions kept to float32 rounding)")
        plan.steps.append(Step("vectors", f"vector {label!r}: {caps.provider} {how}", False,
                               inexact=True, bound=DIRECTION_BOUND, field=name))


def _field_types(f: MetadataField) -> set[str]:
    types = set(f.type.replace("mixed:", "").split(",")) if f.type.startswith("mixed:") else {f.type}
    if "json" in types:                  # a JSON column (pgvector, Milvus): objects, lists, scalars
        types = (types - {"json"}) | {"dict"}
    return types


def _float_rounding(plan: TranslationPlan, f: MetadataField, types: set[str], caps: Capabilities) -> None:
    """The inexact step of a target whose float metadata may come back a few ulps off."""
    if types & {"float", "list"} and not caps.exact_floats:
        plan.steps.append(Step("metadata", f"{f.name}: {caps.provider} may return float values one ulp off",
                               False, inexact=True, bound=FLOAT_BOUND, field=f.name))


def _declares(schema: CollectionSchema, name: str) -> bool:
    return any(f.name == name for f in schema.metadata_fields)


def _plan_dense(plan: TranslationPlan, schema: CollectionSchema, caps: Capabilities,
                metric: Metric | None, vector: str | None) -> list[VectorField]:
    steps, errors, target = plan.steps, plan.errors, caps.provider
    dense = list(schema.vectors)
    if vector is not None:
        chosen = [v for v in dense if v.name == vector]
        if not chosen:
            errors.append(f"--vector {vector!r}: no such vector in {schema.name!r}")
        dropped = [v.name or "(default)" for v in dense if v.name != vector]
        if dropped:
            steps.append(Step("vectors", f"vectors {', '.join(dropped)} are dropped", False, "--vector"))
        dense = chosen
    elif caps.max_dense is not None and len(dense) > caps.max_dense:
        errors.append(f"{target} holds {caps.max_dense} vector per record; the collection has "
                      f"{len(dense)} ({', '.join(v.name or '(default)' for v in dense)}): choose one with --vector")
    out = []
    for v in dense:
        label = v.name or "(default)"
        tname = v.name if caps.named_vectors else ""
        if tname != v.name:
            steps.append(Step("vectors", f"vector {v.name!r} becomes the unnamed vector (its name is not kept)",
                              False, "--vector" if vector is not None else None))
        if v.multivector and not caps.multivector:
            errors.append(f"vector {label!r} is a multivector, which {target} cannot hold")
        dtype = v.dtype
        if dtype not in caps.dtypes:
            if dtype in ("float16", "bfloat16", "int8", "uint8") and "float32" in caps.dtypes:
                steps.append(Step("vectors", f"vector {label!r}: {dtype} stored as float32 (exact widening; "
                                  f"read back as float32)", False))
                plan.dense_dtypes[tname] = "float32"
                dtype = "float32"
            else:
                errors.append(f"vector {label!r}: {dtype} values have no exact type in {target}")
        m = v.metric
        if metric is not None and metric != m:
            steps.append(Step("metric", f"{label}: {m.value} replaced by {metric.value}",
                              m == Metric.UNKNOWN, "--metric"))
            m = metric
        elif m == Metric.UNKNOWN:
            errors.append(f"vector {label!r} has no known metric in the backup: give --metric")
        elif m not in caps.metrics:
            errors.append(f"{target} has no {m.value} metric (vector {label!r}): "
                          f"give --metric ({', '.join(sorted(x.value for x in caps.metrics))})")
        else:
            steps.append(Step("metric", f"{label}: {m.value} -> {caps.metric_name(m)}", True))
        _cosine_rounding(plan, label, tname, m, caps)
        plan.vector_map[v.name] = tname
        out.append(VectorField(tname, v.dim, m, dtype, v.multivector, {}))
    return out


def _plan_sparse(plan: TranslationPlan, schema: CollectionSchema, caps: Capabilities,
                 drop_sparse: bool) -> list[SparseField]:
    steps, errors, target = plan.steps, plan.errors, caps.provider
    sparse = list(schema.sparse)
    names = ", ".join(s.name or "(default)" for s in sparse)
    if not sparse:
        return []
    if drop_sparse:
        steps.append(Step("sparse", f"sparse vectors {names} are dropped", False, "--drop-sparse"))
        return []
    if not caps.sparse:
        errors.append(f"{target} cannot hold sparse vectors: {names} would be lost (--drop-sparse accepts it)")
        return []
    if caps.max_sparse is not None and len(sparse) > caps.max_sparse:
        errors.append(f"{target} holds {caps.max_sparse} sparse vector per record; the collection has "
                      f"{len(sparse)} ({names}) (--drop-sparse drops them)")
        return []
    out = []
    for s in sparse:
        tname = s.name if caps.named_sparse else ""
        if tname == "" and not caps.unnamed_sparse:
            tname = SPARSE_NAME
        if s.name == "" and tname:
            steps.append(Step("sparse", f"the unnamed sparse vector is named {tname!r} "
                              "(unnamed again in a provider with one unnamed sparse vector)", True))
        elif tname != s.name:
            steps.append(Step("sparse", f"sparse vector {s.name!r} becomes the unnamed sparse vector"
                              + (" (named again on the way back)" if s.name == SPARSE_NAME else
                                 " (its name is not kept)"), s.name == SPARSE_NAME))
        m = s.metric
        if m not in caps.sparse_metrics:
            m = Metric.DOT
            steps.append(Step("sparse", f"sparse vector {s.name or '(default)'!r}: {target} has no "
                              f"{s.metric.value} metric for sparse vectors; dot product is used", False))
        if s.modifier and not caps.sparse_modifiers:
            steps.append(Step("sparse", f"sparse vector {s.name or '(default)'!r}: modifier {s.modifier!r} "
                              f"has no equivalent in {target}", False))
        plan.sparse_map[s.name] = tname
        out.append(SparseField(tname, m, s.modifier if caps.sparse_modifiers else None, {}))
    steps.append(Step("sparse", "sparse vectors kept with their indices and values", True))
    return out


def _plan_ids(plan: TranslationPlan, schema: CollectionSchema, caps: Capabilities) -> None:
    if schema.id_type == IdType.INT and IdType.INT in caps.id_types and caps.int_ids[0] >= 0:
        plan.steps.append(Step("ids", f"integer ids outside {caps.provider}'s range ({caps.int_ids[0]} to "
                               f"{caps.int_ids[1]}), if any, become UUIDv5 of the original id, the original "
                               f"kept in metadata field {ORIGINAL_ID!r}", True))
    if caps.id_forbidden_chars and schema.id_type == IdType.STRING and accepts_id(caps, schema.id_type):
        chars = " or ".join(repr(c) for c in caps.id_forbidden_chars)
        plan.steps.append(Step("ids", f"string ids holding {chars} (which {caps.provider} cannot hold), if any, "
                               f"become UUIDv5 of the original id, the original kept in metadata field "
                               f"{ORIGINAL_ID!r}", True))
    if accepts_id(caps, schema.id_type):
        return
    if IdType.UUID in caps.id_types:
        how = "UUIDv5 of the original id"
    elif IdType.STRING in caps.id_types:
        how = "the original id as decimal text"
    else:
        how = "an integer derived from the original id"
    plan.steps.append(Step("ids", f"{schema.id_type.value} ids are not accepted by {caps.provider}: ids become "
                           f"{how}, the original kept in metadata field {ORIGINAL_ID!r}", True))


def _plan_metadata(plan: TranslationPlan, schema: CollectionSchema, caps: Capabilities) -> list[MetadataField]:
    steps, target = plan.steps, caps.provider
    if schema.has_documents and not caps.documents:
        steps.append(Step("documents", f"documents are kept in metadata field {DOCUMENT!r}", True))
    if schema.has_uris and not caps.uris:
        steps.append(Step("documents", f"uris are kept in metadata field {URI!r}", True))
    fields = []
    for f in schema.metadata_fields:
        if (f.name == DOCUMENT and caps.documents) or (f.name == URI and caps.uris):
            continue                         # moved back out of the metadata: no longer a field
        types = _field_types(f)
        for t in sorted(types - {"unknown"}):
            if t == "null" or f.nullable:
                if not caps.null_metadata:
                    steps.append(Step("metadata", f"{f.name}: null values are dropped ({target} has no null)", False))
            if t == "int" and "int" not in caps.metadata_types:
                steps.append(Step("metadata", f"{f.name}: integers stored as numbers (float64; exact up to 2^53, "
                                  "read back as float)", False))
            elif t == "dict" and not caps.nested_metadata:
                steps.append(Step("metadata", f"{f.name}: nested objects stored as JSON text", False))
            elif t == "list" and target == "pinecone":
                steps.append(Step("metadata", f"{f.name}: list items stored as strings", False))
            elif t not in caps.metadata_types and t not in ("null", "int", "dict", "list", "unknown"):
                steps.append(Step("metadata", f"{f.name}: {t} values stored as text", False))
        _float_rounding(plan, f, types, caps)
        fields.append(MetadataField(f.name, f.type, f.indexed, f.nullable))
    # fields the translation itself adds to the metadata (so schema-ful targets declare them)
    declared = {f.name for f in fields}
    added = []
    if not accepts_id(caps, schema.id_type) or ORIGINAL_ID in declared or \
            (schema.id_type == IdType.INT and caps.int_ids[0] >= 0) or \
            (schema.id_type == IdType.STRING and bool(caps.id_forbidden_chars)):
        added.append(ORIGINAL_ID)
    if schema.has_documents and not caps.documents:
        added.append(DOCUMENT)
    if schema.has_uris and not caps.uris:
        added.append(URI)
    fields += [MetadataField(n, "str", None, None) for n in added if n not in declared]
    return fields


def _plan_namespaces(plan: TranslationPlan, schema: CollectionSchema, caps: Capabilities,
                     fold: bool) -> tuple[str, list[str]]:
    """The target collection's name and namespaces."""
    namespaces = list(schema.namespaces)
    has_ns = any(ns for ns in namespaces)
    if has_ns and caps.namespace_kind is None:
        plan.namespace_as_collection = True
        plan.steps.append(Step("namespaces", f"{caps.provider} has no namespaces: each namespace N becomes "
                               f"collection '{schema.name}{NS_SEPARATOR}N' (a restore back with "
                               "--fold-namespaces makes them namespaces again)", True))
        return schema.name, [""]
    if has_ns:
        plan.steps.append(Step("namespaces", f"namespaces become {caps.namespace_kind}s of the same names "
                               f"(the default namespace and names {caps.provider} refuses are mapped by its "
                               "connector and read back as they were)", True))
    elif fold and caps.namespace_kind is not None and NS_SEPARATOR in schema.name:
        base, ns = schema.name.split(NS_SEPARATOR, 1)
        if base and ns:
            plan.fold = (base, ns)
            plan.steps.append(Step("namespaces", f"collection {schema.name!r} becomes {caps.namespace_kind} "
                                   f"{ns!r} of {base!r} (--fold-namespaces)", True))
            return base, [ns]
    return schema.name, namespaces


def check_plan(plan: TranslationPlan) -> None:
    if plan.errors:
        raise TranslationRefused(f"cannot restore {plan.collection!r} into {plan.target_provider}: "
                                 + "; ".join(plan.errors))
