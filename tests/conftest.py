"""Test harness: real PostgreSQL, the Stripe sandbox over HTTP, Debian chromium for pages."""

pytest_plugins = ["tests.support.browser", "tests.support.db", "tests.support.fixtures", "tests.support.stripe"]
