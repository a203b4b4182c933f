"""Prefect flows of reportdata: thin compositions of library steps."""
