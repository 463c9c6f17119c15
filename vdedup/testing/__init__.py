"""Emulators of provider APIs for tests (not used by the engine)."""
