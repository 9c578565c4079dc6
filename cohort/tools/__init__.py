"""Researcher tools: mappings check and coverage, explain, run changes, diff, imports."""
