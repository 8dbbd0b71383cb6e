"""Background tasks (blueprint); job bodies open a transaction and call one service."""

from __future__ import annotations

import procrastinate

blueprint = procrastinate.Blueprint()
