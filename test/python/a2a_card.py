"""The official Python A2A SDK (a2a-sdk, A2A 1.0) reading the agent card of a gateway that
requires a token, and authenticating the way the card says.

Usage: python a2a_card.py <agent-base-url> <token>
Prints one JSON object:
  strict: "ok", or why a strict A2A 1.0 parse of the card's JSON (ProtoJSON into the SDK's
          AgentCard message, unknown fields refused) fails;
  schemes: the security schemes the SDK's card resolver sees (name -> kind and HTTP scheme);
  requirements: the scheme names of each security requirement it sees;
  send: the state of a message sent by a client whose AuthInterceptor adds the token the way
        the card's schemes say (it adds none for a scheme it cannot read), or the error.
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf.json_format import ParseDict, ParseError
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.client.auth import AuthInterceptor, CredentialService
from a2a.types import AgentCard, Message, Part, Role, SendMessageRequest, TaskState


class OneToken(CredentialService):
    """The one credential this client has, for whichever scheme the card names."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_credentials(self, security_scheme_name, context):
        return self.token


async def main(url: str, token: str) -> None:
    out: dict = {}
    async with httpx.AsyncClient(timeout=60) as http:
        raw = (await http.get(f"{url}/.well-known/agent-card.json")).json()
        try:
            ParseDict(raw, AgentCard())
            out["strict"] = "ok"
        except ParseError as e:
            out["strict"] = str(e)

        card = await A2ACardResolver(http, url).get_agent_card()
        schemes = {}
        for name, scheme in card.security_schemes.items():
            kind = scheme.WhichOneof("scheme")
            schemes[name] = {"kind": kind, "scheme": scheme.http_auth_security_scheme.scheme if kind == "http_auth_security_scheme" else None}
        out["schemes"] = schemes
        out["requirements"] = [sorted(r.schemes.keys()) for r in card.security_requirements]

        client = await create_client(card, ClientConfig(streaming=False, httpx_client=http), interceptors=[AuthInterceptor(OneToken(token))])
        message = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text="Who does Ines Silva report to?")])
        try:
            final = None
            async for event in client.send_message(SendMessageRequest(message=message)):
                final = event
            out["send"] = TaskState.Name(final.task.status.state)
        except Exception as e:  # refused: the token was not sent
            out["send"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
