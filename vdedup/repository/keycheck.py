"""Check of the key files against the key list (repository layer; called by engine/check).

Finds what an unlock with one secret cannot: a damaged or replaced key file of another
password or of the recovery key (its bytes differ from the keyed digest in the key list),
a listed key file that is gone, junk in keys/ or keylist/. A key file the list does not
name is a warning: an interrupted `key add`, or a vdedup older than the key list, leaves
one; it cannot open the repository unless it wraps the master key.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import IntegrityError
from . import keylist
from .keys import load_key_files


@dataclass
class KeyCheck:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    key_files: int = 0


def check_keys(repo) -> KeyCheck:
    out = KeyCheck()
    files = load_key_files(repo.backend)
    out.key_files = len(files)
    for name in keylist.names(repo.backend):
        if not name.isdigit():
            out.errors.append(f"keylist/{name[:16]} is not a key list object")
    try:
        listed = keylist.load(repo.backend, repo.master)
    except IntegrityError as e:
        out.errors.append(f"{e.message}: the key files cannot be verified")
        listed = None
    for k in files:
        if not k.usable:
            kind = listed.keys[k.id]["kind"] if listed and k.id in listed.keys else k.kind
            out.errors.append(f"key file {k.id[:8]} ({kind}) is damaged: {k.problem}")
    if out.errors and listed is None:
        return out
    if listed is None:
        out.warnings.append("no key list (repository made before vdedup kept one): key files are not "
                            "verified; the next 'vdedup key add|remove|passwd' writes it")
        return out
    if len([n for n in listed.names if n.isdigit()]) > 1:
        out.warnings.append("older key list generations remain (left by an interrupted key operation; "
                            "the next key operation removes them)")
    present = {k.id: k for k in files}
    for key_id, e in sorted(listed.keys.items()):
        k = present.get(key_id)
        if k is None:
            out.errors.append(f"key file {key_id[:8]} ({e['kind']}) is in the key list but missing: "
                              f"that {e['kind']} key no longer opens the repository")
        elif k.usable and keylist.digest(repo.master, k.raw) != e["digest"]:
            out.errors.append(f"key file {key_id[:8]} ({e['kind']}) is damaged or was replaced: its "
                              f"bytes differ from the key list")
    for k in files:
        if k.id not in listed.keys:
            out.warnings.append(f"key file {k.id[:8]} ({k.kind}) is not in the key list (an interrupted "
                                f"'key add', an older vdedup, or planted): remove it with 'vdedup key remove "
                                f"{k.id[:8]}' if nobody here added it")
    return out
