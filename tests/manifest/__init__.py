"""Tests of the manifest language: YAML safety, field rules, secret scanning and cross-file rules."""
