"""The outbox: messages written with the change that causes them, delivered later by jobs, in order, with retries."""
