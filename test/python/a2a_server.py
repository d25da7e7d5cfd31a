"""An A2A 1.0 agent made with the official Python SDK (a2a-sdk), for the mesh to bridge.

Usage: python a2a_server.py <port> [--minimal]
Two skills: "add" sums the numbers in a message (answered as a task with an artifact, after a
short pause, so callers poll), "shout" upper-cases the message (answered as a plain message).
With --minimal, a minimal valid A2A 1.0 agent instead: "echo", one skill with only what the
spec requires (id, name, description, tags: no examples, no modes), a JSON-RPC interface and
no optional field of the card set; it answers "echo: <message>" as a plain message.
"""

import asyncio
import re
import sys

import uvicorn
from google.protobuf.json_format import MessageToDict
from a2a.helpers.proto_helpers import get_message_text, new_task_from_user_message, new_text_artifact, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette


class Calculator(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message)
        meta = MessageToDict(context.message.metadata) if context.message.HasField("metadata") else {}
        skill = meta.get("skill")
        if skill == "shout" or (skill is None and not re.search(r"\d", text)):
            await event_queue.enqueue_event(new_text_message(text.upper(), context_id=context.context_id))
            return
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await asyncio.sleep(1.5)
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]
        total = sum(numbers)
        answer = f"{int(total) if total.is_integer() else total}"
        await updater.add_artifact([new_text_artifact("sum", answer).parts[0]], name="sum")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message)
        await event_queue.enqueue_event(new_text_message(f"echo: {text}", context_id=context.context_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        pass


def minimal_card(port: int) -> AgentCard:
    return AgentCard(
        name="echo",
        description="Echoes the message.",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Echoes the message back.", tags=["echo"])],
    )


def main(port: int, minimal: bool) -> None:
    if minimal:
        card = minimal_card(port)
        handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
        app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
        return
    card = AgentCard(
        name="Py Calculator",
        description="Adds numbers and shouts, answered by the Python A2A SDK.",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="add", name="Add", description="Adds the numbers in the message.", tags=["math"], examples=["add 2 and 40"]),
            AgentSkill(id="shout", name="Shout", description="Answers the message in capitals.", tags=["text"], examples=["hello"]),
        ],
    )
    handler = DefaultRequestHandler(agent_executor=Calculator(), task_store=InMemoryTaskStore(), agent_card=card)
    app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]), "--minimal" in sys.argv[2:])
