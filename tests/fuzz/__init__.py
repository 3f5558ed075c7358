"""Fuzzers: Hypothesis properties over every parser and the scrubber (docs/architecture.md §4)."""
