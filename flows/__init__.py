"""Prefect flows composing the tasks: schema refresh, data refresh, cleanup, the dispatcher."""
