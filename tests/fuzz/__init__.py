"""Fuzzers: Hypothesis properties over every parser and the scrubber (DESIGN §4)."""
