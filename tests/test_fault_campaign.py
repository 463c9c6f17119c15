"""The seeded fault campaign (issue 19, "Done when"): SIGKILL at 20 seeded moments of a backup
and of a prune, a flipped bit in every kind of stored object, deleted and truncated packs and
index files, a full disk. After every fault: check --read-data finds what is damaged, no
restore silently gives wrong records, and a killed operation run again stores nothing twice.

The seed is VDEDUP_FAULT_SEED (default 19); every trial names its seed, so a failure is
reproduced by running with the same one. The procedures live in tests/faultlib.py; the longer
campaign in benchmarks/faults.py uses the same ones."""
from __future__ import annotations

import os

import pytest

import faultlib

SEED = int(os.environ.get("VDEDUP_FAULT_SEED", "19"))
KILLS = 20


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    b = faultlib.Bench(tmp_path_factory.mktemp("faults"))
    b.prepare()
    return b


def _report(outcomes) -> str:
    return "\n".join(f"{o.name}: {'; '.join(o.problems)}" for o in outcomes if not o.ok)


@pytest.mark.parametrize("op", ["backup", "prune"])
def test_sigkill_at_seeded_moments(bench, op):
    outcomes = faultlib.kill_campaign(bench, op, KILLS, SEED)
    assert len(outcomes) == KILLS
    assert all(o.ok for o in outcomes), _report(outcomes)
    # the campaign must hit the operation while it runs, not only before or after it
    assert sum(o.killed for o in outcomes) >= KILLS // 2, [o.name for o in outcomes]


def test_a_flipped_bit_in_every_kind_of_object(bench):
    outcomes = faultlib.flip_campaign(bench, per_kind=2, seed=SEED)
    assert {o.name.split()[2].split("/")[0] for o in outcomes} == set(faultlib.KINDS)
    assert all(o.ok for o in outcomes), _report(outcomes)
    assert not any(o.restored == "WRONG" for o in outcomes)


def test_deleted_and_truncated_packs_and_index_files(bench):
    outcomes = faultlib.loss_campaign(bench, SEED)
    assert len(outcomes) == 4
    assert all(o.ok for o in outcomes), _report(outcomes)


def test_a_full_disk_during_a_backup(bench):
    o = faultlib.full_disk_trial(bench)
    assert o.ok, f"{o.name}: {'; '.join(o.problems)}"
