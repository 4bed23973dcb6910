"""Prefect flows: they decide what runs next and where the deal waits for a person."""
