"""Offline token estimates, used only when a provider reports no usage (rows are marked `estimated`).

No tokenizer download is possible here (tiktoken fetches its encodings at first use), so this is the
documented characters-per-token heuristic plus OpenAI's per-message framing overhead. The heuristic's
four characters per token holds for English; OpenAI's tokenizers give a Chinese, Japanese or Korean
character, or an emoji, about a token of its own, and other scripts (Cyrillic, Greek, Arabic, accented
Latin) about one per two characters, so those are counted so, not as a quarter each.
"""

import math
import re

CHARS_PER_TOKEN = 4  # ASCII: English words, code, numbers
NON_ASCII_CHARS_PER_TOKEN = 2
TOKENS_PER_MESSAGE = 3  # role and separators around each message
REPLY_PRIMING_TOKENS = 3  # the assistant turn header

# About one token per character: Hangul Jamo, CJK punctuation, kana, CJK ideographs (and their
# extensions), Hangul syllables, compatibility ideographs, emoji and symbols. Counted by regular
# expressions, in C: a long answer is counted on the event loop.
_TOKEN_EACH = re.compile(
    "[\u1100-\u11ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U0001f000-\U0001faff\U00020000-\U0003134f]"
)
_NON_ASCII = re.compile("[^\x00-\x7f]")


def estimate_text_tokens(text: str) -> int:
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    non_ascii = len(_NON_ASCII.findall(text))
    whole = len(_TOKEN_EACH.findall(text))
    ascii_chars = len(text) - non_ascii
    return math.ceil(ascii_chars / CHARS_PER_TOKEN + whole + (non_ascii - whole) / NON_ASCII_CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: list[dict]) -> int:
    """A prompt's tokens: each message's text and tool calls, with the framing around them."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + estimate_text_tokens(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            total += estimate_text_tokens(f"{function.get('name', '')}{function.get('arguments', '')}")
    return total
