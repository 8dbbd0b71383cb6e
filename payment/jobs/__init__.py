"""Background jobs (Procrastinate): the app, the task bodies, the worker."""

# every task is registered as `payment:<name>`
NAMESPACE = "payment"
