"""Progress reporting (engine layer): the engine calls a Reporter, the CLI renders it."""
from __future__ import annotations


class Reporter:
    """Default reporter: ignores everything. The CLI subclasses it with rich progress bars."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase of work begins (e.g. 'backup docs/'), with an optional total count."""

    def advance(self, n: int = 1) -> None:
        """n more units of the current phase are done."""

    def warn(self, message: str) -> None:
        """Something the user should know that did not stop the work."""

    def translation(self, plan: dict) -> None:
        """A translation plan (TranslationPlan.to_dict()), before anything is written."""

    def done(self) -> None:
        """The current phase ended."""
