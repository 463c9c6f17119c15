"""What each provider can hold, for cross-provider translation (engine layer).

The facts live in each connector's declared descriptor
(`vdedup/connectors/<provider>/descriptor.py`) and are read here through the registry, which
imports no SDK: a plan can be made (and shown with --dry-run) without one installed.
"""
from __future__ import annotations

from typing import Iterator, Mapping

from ..connectors.descriptor import JSON_TYPES, SCALARS, Capabilities
from ..connectors.registry import all_capabilities, canonical_provider, capabilities


class _AllCapabilities(Mapping[str, Capabilities]):
    """provider name -> Capabilities of every registered connector that has some (read
    through the registry each time, so plug-ins registered later are included)."""

    def __getitem__(self, provider: str) -> Capabilities:
        return all_capabilities()[provider]

    def __iter__(self) -> Iterator[str]:
        return iter(all_capabilities())

    def __len__(self) -> int:
        return len(all_capabilities())


CAPABILITIES: Mapping[str, Capabilities] = _AllCapabilities()

__all__ = ["CAPABILITIES", "Capabilities", "JSON_TYPES", "SCALARS", "canonical_provider",
           "capabilities"]
