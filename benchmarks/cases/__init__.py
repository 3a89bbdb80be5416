"""Benchmark cases P1..P6; each module exposes ``run(ctx) -> list[Record]``."""
