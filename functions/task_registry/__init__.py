"""task_registry: TaskService. Deployed task specs, so runs can name a task instead of carrying it."""
