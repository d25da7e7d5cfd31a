"""The official Python A2A SDK (a2a-sdk, A2A 1.0) as a client of the toolmesh gateway.

Usage: python a2a_client.py <agent-base-url>
Fetches the agent card, sends a message (non-streaming and streaming), gets the task, and
cancels a finished task (expecting a refusal). Prints one JSON object with what it saw.
"""

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState


def message(text: str, context_id: str | None = None) -> SendMessageRequest:
    m = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    if context_id:
        m.context_id = context_id
    return SendMessageRequest(message=m)


def texts(parts) -> str:
    return "\n".join(p.text for p in parts if p.text)


async def main(url: str) -> None:
    out: dict = {}
    async with httpx.AsyncClient(timeout=60) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        out["card"] = {"name": card.name, "skills": [s.id for s in card.skills], "streaming": card.capabilities.streaming,
                       "url": card.supported_interfaces[0].url, "examples": list(card.skills[0].examples) if card.skills else []}

        client = await create_client(card, ClientConfig(streaming=False, httpx_client=http))
        final = None
        async for event in client.send_message(message("How many vacation days does Bob Okafor have left?")):
            final = event
        task = final.task
        out["send"] = {"state": TaskState.Name(task.status.state), "answer": texts(task.artifacts[0].parts) if task.artifacts else "",
                       "context": task.context_id}
        got = await client.get_task(GetTaskRequest(id=task.id))
        out["get"] = {"id_matches": got.id == task.id, "state": TaskState.Name(got.status.state)}
        try:
            await client.cancel_task(CancelTaskRequest(id=task.id))
            out["cancel_finished"] = "accepted"
        except Exception as e:  # a finished task cannot be cancelled
            out["cancel_finished"] = type(e).__name__

        streaming = await create_client(card, ClientConfig(streaming=True, httpx_client=http))
        states = []
        answer = ""
        async for event in streaming.send_message(message("Who does Ines Silva report to?", task.context_id)):
            if event.HasField("status_update"):
                states.append(TaskState.Name(event.status_update.status.state))
            elif event.HasField("artifact_update"):
                answer = texts(event.artifact_update.artifact.parts)
            elif event.HasField("task"):
                states.append(TaskState.Name(event.task.status.state))
        out["stream"] = {"states": states, "answer": answer}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
