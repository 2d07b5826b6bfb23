import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client, TLSConfig
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


async def main(namespace: str) -> None:
    tls = TLSConfig(
        server_root_ca_cert=Path(".stratus/pki/gateway-ca.pem").read_bytes(),
        client_cert=Path("certs/worker/client.pem").read_bytes(),
        client_private_key=Path("certs/worker/client.key").read_bytes(),
        # The gateway checks your certificate against your namespace's CAs only, chosen by
        # the TLS server name: <namespace id>.stratus.localhost (no DNS needed).
        domain=f"{namespace}.stratus.localhost",
    )
    client = await Client.connect("localhost:7233", namespace=namespace, tls=tls)
    async with Worker(client, task_queue="hello", workflows=[Greeting], activities=[greet]):
        result = await client.execute_workflow(
            Greeting.run, "Stratus", id="hello-1", task_queue="hello"
        )
        print(result)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
