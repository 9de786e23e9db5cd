"""Stealth score, phases, sanity bounds, clusters, figures."""
