"""The one place that names the channel-layer groups of live conversations and sends to them. With
REDIS_URL set the layer is Redis, so a message reaches the conversation whichever web process holds
its socket."""

import hashlib
import logging

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

REPLACED = "conversation.replaced"  # handled by ConversationConsumer.conversation_replaced


def caller_group(caller_id: str) -> str:
    """The group of a caller's live conversations (a group name is ASCII and shorter than 100)."""
    return f"caller.{hashlib.sha256(caller_id.encode()).hexdigest()[:40]}"


async def conversation_replaced(caller_id: str, conversation_id: str) -> None:
    """Tell the caller's other live conversations that `conversation_id` replaces them: a caller has one
    open session, so the older socket closes rather than share it. A layer that cannot be reached is
    logged: the new conversation goes on."""
    try:
        await get_channel_layer().group_send(
            caller_group(caller_id), {"type": REPLACED, "conversation_id": conversation_id}
        )
    except Exception:  # noqa: BLE001 - a broken layer must not refuse the conversation
        log.exception("Could not reach the channel layer to replace %s's other conversations", caller_id)
