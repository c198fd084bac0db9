"""What freshcache asks of Prefect besides flows and tasks: is its API up, do schedules run."""
