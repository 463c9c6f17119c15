"""What each provider can hold, for cross-provider translation (engine layer).

The facts live in each connector's declared descriptor
(`vdedup/connectors/<provider>/descriptor.py`) and are read here through the registry, which
imports no SDK: a plan can be made (and shown with --dry-run) without one installed.
"""
from __future__ import annotations

from typing import Iterator, Mapping

from ..connectors.descriptor import JSON_TYPES, SCALARS, Capabilities
from ..connectors.registry import all_capabilities, canonical_provider, capabilities
from ..errors import UsageError


class _AllCapabilities(Mapping[str, Capabilities]):
    """provider name -> Capabilities of every registered connector that has some (read
    through the registry each time, so plug-ins registered later are included)."""

    def __getitem__(self, provider: str) -> Capabilities:
        # one name, by the registry's look-up (plug-ins are read only for a name not built
        # in); keyed by registry names, as iteration gives them, not by aliases
        try:
            if canonical_provider(provider) == provider:
                return capabilities(provider)
        except UsageError:
            pass
        raise KeyError(provider)

    def __iter__(self) -> Iterator[str]:
        return iter(all_capabilities())

    def __len__(self) -> int:
        return len(all_capabilities())


CAPABILITIES: Mapping[str, Capabilities] = _AllCapabilities()

__all__ = ["CAPABILITIES", "Capabilities", "JSON_TYPES", "SCALARS", "canonical_provider",
           "capabilities"]
