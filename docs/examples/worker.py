"""Run a workflow and its activity on a Stratus namespace, through the gateway over mTLS.

usage: python docs/examples/worker.py NAMESPACE_ID [--certs-dir DIR] [--gateway-ca FILE]
                                                   [--address HOST:PORT]

Run from the repository root beside `make up`, the defaults find everything: the data dir is
STRATUS_DATA_DIR or .stratus, the client certificate <data dir>/certs/<namespace id>/client.pem
and client.key (where `stratus namespace create --generate-certs` writes them), the gateway's
CA <data dir>/pki/gateway-ca.pem, the gateway STRATUS_GATEWAY_ADDRESS or localhost:7233.
"""

import argparse
import asyncio
import gc
import os
import time
import weakref
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client, TLSConfig
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


async def main(args: argparse.Namespace, runtime: Runtime) -> None:
    namespace = args.namespace
    tls = TLSConfig(
        server_root_ca_cert=args.gateway_ca.read_bytes(),
        client_cert=(args.certs_dir / "client.pem").read_bytes(),
        client_private_key=(args.certs_dir / "client.key").read_bytes(),
        # The gateway checks your certificate against your namespace's CAs only, chosen by
        # the TLS server name: <namespace id>.stratus.localhost (no DNS needed).
        domain=f"{namespace}.stratus.localhost",
    )
    client = await Client.connect(args.address, namespace=namespace, tls=tls, runtime=runtime)
    async with Worker(client, task_queue="hello", workflows=[Greeting], activities=[greet]):
        result = await client.execute_workflow(
            Greeting.run, "Stratus", id="hello-1", task_queue="hello"
        )
        print(result)


def wait_until_freed(runtime: weakref.ref[Runtime]) -> None:
    """Let the SDK's runtime (its Rust threads) shut down before Python finalizes. Left
    running, a thread still handing a result back to Python can crash the exit with SIGABRT
    or SIGSEGV (temporalio/sdk-python#300). The client and worker hold it in reference cycles,
    hence gc; a callback still in flight can hold it a moment longer."""
    for _ in range(100):
        gc.collect()
        if runtime() is None:
            return
        time.sleep(0.01)


def parse_args() -> argparse.Namespace:
    data_dir = Path(os.environ.get("STRATUS_DATA_DIR") or ".stratus")
    parser = argparse.ArgumentParser(description="Run a greeting workflow through Stratus.")
    parser.add_argument("namespace", help="namespace id, <name>.<account id>")
    parser.add_argument(
        "--certs-dir",
        type=Path,
        help="directory with client.pem and client.key (default: <data dir>/certs/<namespace>)",
    )
    parser.add_argument(
        "--gateway-ca",
        type=Path,
        default=data_dir / "pki" / "gateway-ca.pem",
        help="the gateway's CA certificate (default: <data dir>/pki/gateway-ca.pem)",
    )
    parser.add_argument(
        "--address",
        default=os.environ.get("STRATUS_GATEWAY_ADDRESS") or "localhost:7233",
        help="the gateway's mTLS endpoint (default: localhost:7233)",
    )
    args = parser.parse_args()
    if args.certs_dir is None:
        args.certs_dir = data_dir / "certs" / args.namespace
    return args


if __name__ == "__main__":
    args = parse_args()
    # Our own runtime rather than the SDK's default one, which lives in a module global until
    # the interpreter is gone; it shuts down when its last reference goes.
    runtime = Runtime(telemetry=TelemetryConfig())
    asyncio.run(main(args, runtime))
    freed = weakref.ref(runtime)
    del runtime
    wait_until_freed(freed)
