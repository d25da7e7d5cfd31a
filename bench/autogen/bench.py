"""AutoGen side of toolmesh's router -> worker benchmark.

The same request/response workload as toolmesh's: a client sends a 100-byte message to a
router agent, which forwards it to a worker agent and returns the worker's answer. Agents
run on AutoGen's distributed runtime: a GrpcWorkerAgentRuntimeHost, the worker and the
router each in a GrpcWorkerAgentRuntime of its own process, and the client in a third
runtime (this process). Prints one JSON line: {version, c1, c16} with p50/p99 in ms and
calls/s, like bench/lib.ts.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version

from autogen_core import AgentId, MessageContext, RoutedAgent, message_handler, try_get_known_serializers_for_type
from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime, GrpcWorkerAgentRuntimeHost


@dataclass
class Msg:
    payload: str


class Worker(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("echo worker")

    @message_handler
    async def on_msg(self, message: Msg, ctx: MessageContext) -> Msg:
        return Msg(payload=message.payload)


class Router(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("router")

    @message_handler
    async def on_msg(self, message: Msg, ctx: MessageContext) -> Msg:
        return await self.send_message(message, AgentId("worker", "default"))


async def runtime(address: str) -> GrpcWorkerAgentRuntime:
    rt = GrpcWorkerAgentRuntime(host_address=address)
    rt.add_message_serializer(try_get_known_serializers_for_type(Msg))
    await rt.start()
    return rt


async def serve(role: str, address: str) -> None:
    if role == "host":
        host = GrpcWorkerAgentRuntimeHost(address=address)
        host.start()
        print("ready", flush=True)
        await asyncio.Event().wait()
    rt = await runtime(address)
    if role == "worker":
        await Worker.register(rt, "worker", lambda: Worker())
    else:
        await Router.register(rt, "router", lambda: Router())
    print("ready", flush=True)
    await asyncio.Event().wait()


def pct(sorted_values: list, p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))] if sorted_values else float("nan")


async def measure(call, concurrency: int, count: int | None = None, duration: float | None = None) -> dict:
    lat: list[float] = []
    errors = 0
    issued = 0
    start = time.perf_counter()

    def done() -> bool:
        return issued >= count if count is not None else time.perf_counter() - start >= duration

    async def loop() -> None:
        nonlocal issued, errors
        while not done():
            issued += 1
            t = time.perf_counter()
            try:
                await call()
                lat.append((time.perf_counter() - t) * 1000)
            except Exception:  # noqa: BLE001 - counted, like the TypeScript side
                errors += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat.sort()
    return {"n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99), "rps": len(lat) / elapsed, "errors": errors}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bench(mode: str) -> dict:
    address = f"127.0.0.1:{free_port()}"
    procs = []
    try:
        for role in ("host", "worker", "router"):
            p = subprocess.Popen([sys.executable, __file__, "serve", role, address], stdout=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", f"{role} did not start"
        await asyncio.sleep(0.5)  # let registrations reach the host
        client = await runtime(address)
        msg = Msg(payload="x" * 100)
        router = AgentId("router", "default")

        async def call() -> None:
            r = await client.send_message(msg, router)
            assert r.payload == msg.payload

        quick = mode == "quick"
        for _ in range(20 if quick else 200):
            await call()
        c1 = await measure(call, 1, count=100 if quick else 1000)
        c16 = await measure(call, 16, duration=0.5 if quick else 3.0)
        await client.stop()
        return {"version": version("autogen-core"), "c1": c1, "c16": c16}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
    else:
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        print(json.dumps(asyncio.run(bench(sys.argv[1] if len(sys.argv) > 1 else "full"))))
