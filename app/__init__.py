"""The application: the `freshcache` command, `freshcache up` and the processes it runs."""
