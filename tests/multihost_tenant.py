"""The tenant host of the multi-host test: real temporalio workers and clients, run inside the
tenant's network namespace and driven by the test over stdin/stdout, one JSON object a line.

Every request names a gateway (``target``: its address on the simulated network), a namespace
and the files of the tenant's TLS (``ca``: the gateway CA; ``cert``/``key``: the client
certificate); the TLS server name is ``<namespace id>.<gateway domain>``. Requests:

- ``{"op": "worker", "task_queue": ...}``: start a worker (GreetingWorkflow and
  NappingGreetingWorkflow) that keeps running until the agent ends; answers at once.
- ``{"op": "start", "workflow": "GreetingWorkflow", "ids": [...], "task_queue": ...}``: start
  those workflows; answers once all are started.
- ``{"op": "results", "ids": [...], "wait_seconds": ...}``: wait for those workflows' results
  (``{"results": {id: result}}``, or ``{"error": ...}``).
- ``{"op": "describe"}``: DescribeNamespace; ``{"status": "OK"}`` or the gRPC status' name.
- ``{"op": "count"}``: ``{"completed": n, "other": m}``, the namespace's workflows by status.

Two more let the test, which lives outside the simulated network, see it from the tenant host:
``{"op": "http", "url": ...}`` (``{"status": code}`` or ``None``) and ``{"op": "health",
"target": ..., "ca": ...}`` (a gateway's gRPC health on its API-key endpoint).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
from support_workflows import GreetingWorkflow, NappingGreetingWorkflow, compose_greeting
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, TLSConfig, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker

from dataplane.gateway import ServerNames

_WORKFLOWS = {
    "GreetingWorkflow": GreetingWorkflow,
    "NappingGreetingWorkflow": NappingGreetingWorkflow,
}


class Agent:
    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], Client] = {}
        self.workers: list[asyncio.Task[None]] = []

    async def client(self, request: dict[str, Any]) -> Client:
        key = (request["target"], request["namespace"])
        if key not in self.clients:
            self.clients[key] = await Client.connect(
                request["target"],
                namespace=request["namespace"],
                tls=TLSConfig(
                    server_root_ca_cert=Path(request["ca"]).read_bytes(),
                    client_cert=Path(request["cert"]).read_bytes(),
                    client_private_key=Path(request["key"]).read_bytes(),
                    domain=ServerNames().for_namespace(request["namespace"]),
                ),
            )
        return self.clients[key]

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "http":
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return {"status": (await http.get(request["url"])).status_code}
            except httpx.HTTPError as error:
                return {"status": None, "error": str(error)}
        if op == "health":
            return {"status": await _gateway_health(request["target"], request["ca"])}
        if op == "describe":
            try:
                client = await self.client(request)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=request["namespace"]),
                    timeout=timedelta(seconds=5),
                )
            except RPCError as error:
                return {"status": error.status.name, "message": error.message}
            return {"status": "OK"}
        client = await self.client(request)
        if op == "worker":
            worker = Worker(
                client,
                task_queue=request["task_queue"],
                workflows=list(_WORKFLOWS.values()),
                activities=[compose_greeting],
            )
            self.workers.append(asyncio.create_task(worker.run()))
            return {"ok": True}
        if op == "start":
            workflow = _WORKFLOWS[request["workflow"]]
            await asyncio.gather(
                *(
                    client.start_workflow(
                        workflow.run,  # type: ignore[attr-defined]
                        workflow_id,
                        id=workflow_id,
                        task_queue=request["task_queue"],
                    )
                    for workflow_id in request["ids"]
                )
            )
            return {"ok": True}
        if op == "results":
            handles = [client.get_workflow_handle(workflow_id) for workflow_id in request["ids"]]
            results: list[Awaitable[Any]] = [handle.result() for handle in handles]
            done = await asyncio.wait_for(asyncio.gather(*results), timeout=request["wait_seconds"])
            return {"results": dict(zip(request["ids"], done, strict=True))}
        if op == "count":
            completed = other = 0
            async for execution in client.list_workflows():
                if execution.status == WorkflowExecutionStatus.COMPLETED:
                    completed += 1
                else:
                    other += 1
            return {"completed": completed, "other": other}
        raise ValueError(f"unknown op {op!r}")


async def _gateway_health(target: str, ca: str) -> str | None:
    """The gateway's gRPC health answer on its API-key endpoint (no client certificate)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes())
    options = [("grpc.ssl_target_name_override", "localhost")]
    async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            answer: bytes = await check(b"", timeout=2)
        except grpc.RpcError:
            return None
    return {b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(answer, answer.hex())


async def main() -> None:
    agent = Agent()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        try:
            answer = await agent.handle(request)
        except RPCError as error:
            answer = {"error": f"{error.status.name}: {error.message}"}
        except Exception as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for task in agent.workers:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
