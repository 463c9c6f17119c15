"""The vdedup command line (installed as the `vdedup_cli` package). The only code that
imports typer and rich; commands are thin wrappers over vdedup.engine."""
