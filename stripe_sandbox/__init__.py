"""Offline, stateful emulator of the part of Stripe's v1 API the service uses (see DESIGN.md section 6).

app = create_sandbox_app(base_url="http://127.0.0.1:12111", webhook_endpoints=[(url, "whsec_...")])
await serve("127.0.0.1", 12111, webhook_endpoints=[...], state_file=".data/sandbox.json")
"""

from .app import create_sandbox_app
from .server import check_loopback, make_server, serve
from .webhooks import sign

__all__ = ["check_loopback", "create_sandbox_app", "make_server", "serve", "sign"]
