"""CPU per Stripe read in one process: StripeGateway's reads, as the worker makes them, against `payment sandbox`.

    python benchmarks/stripe_reads.py [--reads 3000] [--in-flight 64] [--latency-ms 150] [--rounds 2]
                                      [--before PATH | --before-ref REF]

- Stripe: `payment sandbox` in its own process with `--latency-ms` added to every API answer; a customer, a plan and
  a paid subscription (its invoice, its charge) are made in it once.
- A round is a fresh process (ours, or the before side's checkout: `--before PATH`, or `--before-ref REF`: `git
  archive REF` of this repository unpacked into a temporary directory) that makes `--reads` reads with `--in-flight`
  of them in flight: the worker's mix (the subscription with its discounts, the invoice with its payments, the charge
  with its refunds, the customer, the price). It prints its own CPU ms per read (time.process_time, from the first
  read to the last; the warm-up wave excluded), reads/s and the load average beside them. Rounds alternate the sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import archive, load_average  # noqa: E402


async def make_objects(sandbox_url: str) -> dict[str, str]:
    """A paid subscription in the sandbox; the ids the reads use."""
    sys.path.insert(0, str(ROOT))
    from payment.stripe.gateway import StripeGateway
    from tests.support.db import settings_for
    from tests.support.stripe import GOOD_CARD, sandbox_control, stripe_price

    settings = settings_for("postgresql+asyncpg://unused/unused", stripe_api_base=sandbox_url)
    gateway = StripeGateway(settings)
    try:
        price = await stripe_price(gateway)
        customer = await gateway.create_customer({"email": "bench@example.com"})
        checkout = await gateway.create_checkout_session(
            {
                "mode": "subscription",
                "customer": customer["id"],
                "success_url": "http://app.test/ok",
                "cancel_url": "http://app.test/no",
                "line_items": [{"price": price, "quantity": 1}],
            }
        )
        paid = sandbox_control(sandbox_url, "POST", f"checkout_sessions/{checkout['id']}/pay", data={"card": GOOD_CARD})
        subscription = paid["subscription"]
        invoice = await gateway.retrieve_invoice(str(subscription["latest_invoice"]))
        payments = invoice.get("payments", {}).get("data", [])
        charge = next((p["payment"].get("charge") for p in payments if p.get("payment", {}).get("charge")), None)
        ids = {"subscription": subscription["id"], "invoice": invoice["id"], "customer": customer["id"], "price": price}
        if charge:
            ids["charge"] = charge if isinstance(charge, str) else charge["id"]
        return ids
    finally:
        await gateway.aclose()


async def reads(sandbox_url: str, ids: dict[str, str], count: int, in_flight: int) -> dict[str, float]:
    """Run in the side's own process (its checkout first on sys.path)."""
    from payment.stripe.gateway import StripeGateway
    from tests.support.db import settings_for

    settings = settings_for("postgresql+asyncpg://unused/unused", stripe_api_base=sandbox_url)
    settings = settings.replace(stripe_http_pool_size=in_flight)
    gateway = StripeGateway(settings)
    calls: list[Any] = [
        lambda: gateway.retrieve_subscription(ids["subscription"]),
        lambda: gateway.retrieve_invoice(ids["invoice"]),
        lambda: gateway.retrieve_customer(ids["customer"]),
        lambda: gateway.retrieve_price(ids["price"]),
    ]
    if "charge" in ids:
        calls.append(lambda: gateway.retrieve_charge_with_refunds(ids["charge"]))

    async def run(n: int) -> None:
        queue = iter(range(n))

        async def lane() -> None:
            for i in queue:
                found = await calls[i % len(calls)]()
                assert found["id"]

        await asyncio.gather(*(lane() for _ in range(in_flight)))

    try:
        await run(in_flight * 2)  # warm-up: connections opened, imports done
        cpu, wall = time.process_time(), time.perf_counter()
        await run(count)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await gateway.aclose()
    return {"cpu_ms_per_read": cpu * 1000 / count, "reads_per_s": count / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", help="a checkout of this repository to compare against")
    parser.add_argument("--before-ref", help="a git ref of this repository to compare against (git archive)")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: one round, in the side's process
    args = parser.parse_args()

    if args.side:
        sys.path.insert(0, args.side)
        sandbox_url, ids = os.environ["BENCH_SANDBOX"], json.loads(os.environ["BENCH_IDS"])
        print(json.dumps(asyncio.run(reads(sandbox_url, ids, args.reads, args.in_flight))))
        return

    sys.path.insert(0, str(ROOT))
    from benchmarks.loadgen import wait_listening
    from payment.embedded_pg import free_port

    with tempfile.TemporaryDirectory() as scratch:
        roots = {"ours": ROOT}
        if args.before:
            roots["before"] = Path(args.before).resolve()
        elif args.before_ref:
            roots["before"] = archive(args.before_ref, Path(scratch) / "before")
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "payment.cli", "sandbox", "--port", str(port)]
        command += ["--state-file", str(Path(scratch) / "sandbox.json"), "--latency-ms", str(args.latency_ms)]
        env = {**os.environ, "LOG_LEVEL": "WARNING"}
        sandbox = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
        try:
            wait_listening(port, sandbox)
            ids = asyncio.run(make_objects(sandbox_url))
            print(
                f"{args.reads} reads, {args.in_flight} in flight, Stripe latency {args.latency_ms} ms; "
                f"objects: {', '.join(sorted(ids))}"
            )
            sides = list(roots)
            for round_ in range(args.rounds):
                order = sides if round_ % 2 == 0 else sides[::-1]
                for side in order:
                    side_args = ["--side", str(roots[side]), "--reads", str(args.reads)]
                    side_args += ["--in-flight", str(args.in_flight)]
                    out = subprocess.run(
                        [sys.executable, __file__, *side_args],
                        cwd=roots[side],
                        env={**env, "BENCH_SANDBOX": sandbox_url, "BENCH_IDS": json.dumps(ids)},
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    found = json.loads(out.strip().splitlines()[-1])
                    print(
                        f"round {round_ + 1} {side:>6}: {found['cpu_ms_per_read']:.3f} CPU ms/read, "
                        f"{found['reads_per_s']:.0f} reads/s ({load_average()})",
                        flush=True,
                    )
        finally:
            sandbox.terminate()
            sandbox.wait(30)


if __name__ == "__main__":
    main()
