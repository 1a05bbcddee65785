"""dmgate's service: everything that does I/O (HTTP in and out, the store, notifications)."""
