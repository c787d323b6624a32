"""Offline token estimates, used only when a provider reports no usage (rows are marked `estimated`).

No tokenizer download is possible here (tiktoken fetches its encodings at first use), so this is the
documented characters-per-token heuristic plus OpenAI's per-message framing overhead.
"""

import math

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3  # role and separators around each message
REPLY_PRIMING_TOKENS = 3  # the assistant turn header


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(messages: list[dict]) -> int:
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + estimate_text_tokens(str(message.get("content") or ""))
    return total
