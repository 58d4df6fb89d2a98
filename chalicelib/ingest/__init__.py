"""Ingest: edge validation, the pipeline of named steps, and counted drop reasons."""
