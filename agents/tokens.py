"""Offline token estimates, used only when a provider reports no usage (rows are marked `estimated`).

No tokenizer download is possible here (tiktoken fetches its encodings at first use), so this is the
documented characters-per-token heuristic plus OpenAI's per-message framing overhead. The heuristic's
four characters per token holds for English; OpenAI's tokenizers give a Chinese, Japanese or Korean
character, or an emoji, about a token of its own, and other scripts (Cyrillic, Greek, Arabic, accented
Latin) about one per two characters, so those are counted so, not as a quarter each.
"""

import math

CHARS_PER_TOKEN = 4  # ASCII: English words, code, numbers
NON_ASCII_CHARS_PER_TOKEN = 2
TOKENS_PER_MESSAGE = 3  # role and separators around each message
REPLY_PRIMING_TOKENS = 3  # the assistant turn header

# Code point ranges of about one token per character: Hangul Jamo, CJK punctuation, kana, CJK
# ideographs (and their extensions), Hangul syllables, compatibility ideographs, emoji and symbols.
_TOKEN_EACH = (
    (0x1100, 0x11FF),
    (0x3000, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0x1F000, 0x1FAFF),
    (0x20000, 0x3134F),
)


def estimate_text_tokens(text: str) -> int:
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    ascii_chars = whole = other = 0
    for char in text:
        point = ord(char)
        if point < 0x80:
            ascii_chars += 1
        elif any(low <= point <= high for low, high in _TOKEN_EACH):
            whole += 1
        else:
            other += 1
    return math.ceil(ascii_chars / CHARS_PER_TOKEN + whole + other / NON_ASCII_CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: list[dict]) -> int:
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + estimate_text_tokens(str(message.get("content") or ""))
    return total
