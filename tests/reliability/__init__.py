"""Reliability: faults, kills, peering, fuzzed input, security checks."""
