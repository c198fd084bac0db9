"""The Prefect-free logic of keeping the cache fresh: refreshes, policies, cleanup."""
