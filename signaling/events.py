"""Shapes of server events that more than one module sends."""

from __future__ import annotations

from typing import Any

from storage.models import ChatMessage


def chat_event(message: ChatMessage) -> dict[str, Any]:
    author = None
    if message.author is not None:
        author = {"user_id": message.author.id, "display_name": message.author.display_name}
    return {
        "id": message.id,
        "author": author,
        "text": message.text,
        "kind": message.kind,
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
    }
