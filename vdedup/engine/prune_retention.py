"""Prune on a repository with Object Lock: keep what is still retained (engine layer).

A pack or index file under retention cannot be removed yet. Prune's ordering needs more than
skipping the removal: an index file that must stay keeps every pack it names (a pack is never
removed while an index file names it), and a pack that must stay is not repacked (the copy
would only add data). So the plan is changed before anything is written.
"""
from __future__ import annotations

from typing import Any

from ..repository import Repository
from ..repository.retention import enabled, held_index_files, held_packs


def hold_retained(repo: Repository, packs: dict[bytes, Any], file_packs: dict[str, list[bytes]],
                  delete_unindexed: list[str]) -> tuple[set[str], list[dict[str, str]]]:
    """Mark retained packs (and every pack a retained index file names) `keep`, drop retained
    unindexed packs from `delete_unindexed`; returns the retained index files and, for the
    report, each object kept this way with the end of its retention."""
    if not enabled(repo):
        return set(), []
    report: list[dict[str, str]] = []
    candidates = [pid.hex() for pid, p in packs.items() if p.action != "keep"] + list(delete_unindexed)
    for name, until in sorted(held_packs(repo, candidates).items()):
        report.append({"object": f"data/{name}", "until": until.isoformat(timespec="seconds")})
        pid = bytes.fromhex(name)
        if pid in packs:
            packs[pid].action = "keep"
        else:
            delete_unindexed.remove(name)
    # index files naming a pack that goes, which prune would drop (one that only repeats
    # packs named elsewhere may be dropped or kept: prune's step 3 keeps it when retained)
    going = [name for name, pids in file_packs.items()
             if any(pid in packs and packs[pid].action != "keep" for pid in pids)]
    files = held_index_files(repo, going)
    for name, until in sorted(files.items()):
        pinned = [pid for pid in file_packs[name] if pid in packs and packs[pid].action != "keep"]
        for pid in pinned:
            packs[pid].action = "keep"
        if pinned:
            report.append({"object": f"index/{name}", "until": until.isoformat(timespec="seconds")})
    return set(files), report
