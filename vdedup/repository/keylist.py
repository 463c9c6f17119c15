"""The key list: keyed digests of every key file, sealed (repository layer).

Key files are the one kind of object not sealed with the master key, so nothing but this
list can tell a damaged or swapped key file from a good one without its secret: a
recovery key kept in a safe would otherwise be found dead only on the day it is needed.
`keylist/<generation, 12 digits>` (object type 7) holds, for each key file, its kind and
`BLAKE3(key = derive("vdedup 2026-12-20 key file digest", M), file bytes)`.

The config is written once and never replaced (it is the commit point of `init`, and no
backend can replace an object atomically), so the list lives in objects of its own: a change
writes generation N+1, then removes the older ones; the highest generation that opens is
the list. Written by `init` and by every `key add|remove|passwd`; a repository made before
the list existed has none until its next key operation, which lists the key files present.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from blake3 import blake3

from ..backend.base import FileType
from ..crypto.keys import CTX_KEY_DIGEST, MasterKey
from ..errors import FormatError, IntegrityError, ObjectExists, ObjectNotFound, RetentionActive, UnsupportedFormat
from ..format.objects import ObjectType, open_json_object, seal_json_object
from ..format.versions import FORMATS
from .keys import KeyFile

VERSION = FORMATS[ObjectType.KEYLIST].writes


def digest(master: MasterKey, raw: bytes) -> str:
    return blake3(raw, key=master.purpose_key(CTX_KEY_DIGEST)).hexdigest()


def object_name(generation: int) -> str:
    return f"{generation:012d}"


@dataclass
class KeyList:
    generation: int = 0
    keys: dict[str, dict[str, str]] = field(default_factory=dict)    # id -> {kind, digest}
    time: str = ""
    names: list[str] = field(default_factory=list)                    # objects seen (all generations)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "generation": self.generation, "time": self.time,
                "keys": [{"id": k, **v} for k, v in sorted(self.keys.items())]}


def names(backend) -> list[str]:
    return sorted(n for n, _ in backend.list(FileType.KEYLIST))


def load(backend, master: MasterKey) -> KeyList | None:
    """The newest key list, or None when the repository has none. A newest object that does
    not open is an integrity error: an older one must not silently take its place."""
    found = names(backend)
    for name in reversed(found):
        if not name.isdigit():
            continue
        try:
            d = open_json_object(master, ObjectType.KEYLIST, name, backend.load(FileType.KEYLIST, name)).data
        except ObjectNotFound:
            continue                    # replaced concurrently
        except UnsupportedFormat:
            raise                       # a newer vdedup's list: never taken for a damaged one
        except (IntegrityError, ValueError) as e:
            msg = e.message if isinstance(e, IntegrityError) else "not valid JSON"
            raise IntegrityError(f"key list {name}: {msg}") from None
        if not isinstance(d, dict) or d.get("generation") != int(name) or not isinstance(d.get("keys"), list):
            raise FormatError(f"key list {name}: malformed")
        return KeyList(int(name), {k["id"]: {"kind": k["kind"], "digest": k["digest"]} for k in d["keys"]},
                       d.get("time", ""), found)
    return None


def write(backend, master: MasterKey, keys: dict[str, dict[str, str]], base: KeyList | None) -> KeyList:
    """Save the next generation, then remove the older ones (a crash in between leaves both;
    the higher one counts)."""
    generation = base.generation if base else 0
    while True:
        generation += 1
        new = KeyList(generation, dict(keys), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        try:
            backend.save(FileType.KEYLIST, object_name(generation),
                         seal_json_object(master, ObjectType.KEYLIST, object_name(generation), new.to_dict())[0])
            break
        except ObjectExists:
            continue                    # another key operation took this number
    for name in names(backend):
        if name != object_name(generation) and (not name.isdigit() or int(name) < generation):
            try:
                backend.remove(FileType.KEYLIST, name)
            except (ObjectNotFound, RetentionActive):    # Object Lock: the higher one counts
                pass
    new.names = [object_name(generation)]
    return new


def entry(master: MasterKey, key: KeyFile) -> dict[str, str]:
    return {"kind": key.kind, "digest": digest(master, key.raw)}


def update(backend, master: MasterKey, add: list[KeyFile] = (), remove: list[str] = (),
           present: list[KeyFile] | None = None) -> KeyList:
    """Add and remove entries. Without a list yet (an older repository), start from the
    well-formed key files present; with one, change only what is asked, so a key file that
    went missing or was planted stays reported by `check`."""
    base = load(backend, master)
    if base is None:
        from .keys import load_key_files
        keys = {k.id: entry(master, k) for k in (present if present is not None else load_key_files(backend))
                if k.usable}
    else:
        keys = dict(base.keys)
    for k in add:
        keys[k.id] = entry(master, k)
    for key_id in remove:
        keys.pop(key_id, None)
    return write(backend, master, keys, base)
