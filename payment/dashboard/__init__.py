"""Dashboard: the admin landing page's cards and charts (definitions in metrics.py and history.py)."""
