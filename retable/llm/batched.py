"""Several chat completions of the embedded model decoded together (llama.cpp's batch API, through
llama-cpp-python's low-level bindings): one `llama_decode` per step advances every sequence in flight,
new requests join as others finish (continuous batching), and a prompt prefix the previous request shared
(the system message and the template's fixed part) is copied in the KV cache instead of computed again.
Prompts are decoded in a second, small context and their KV cells then moved into the reply pool.

Each sequence samples like llama.cpp's own common sampler: top-k 40, typical 1.0, top-p 0.95, min-p 0.05,
temperature, then a draw seeded by the call's seed; the JSON-schema grammar checks the drawn token and
only a rejected draw is resampled over the grammar-masked distribution (checking one token is cheap,
masking the whole vocabulary is not). Callers block in `generate` from several threads; one thread decodes."""

from __future__ import annotations

import ctypes
import json
import math
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from retable.llm.base import Message, Reply

MIN_SHARED = 32  # a shared prefix shorter than this is computed again rather than copied
STEP_TOKENS = 2048  # most prompt tokens admitted into one decode step (the context's n_batch)
CELLS_PER_SEQ = 768  # KV cells per sequence in flight, beyond one whole context (a queries call: ~460 prompt + ~70 reply tokens).
# Attention reads the pool's used span, so a pool sized for the worst case of every sequence (parallel x n_ctx)
# costs time on every step (a scratch probe of 24 queries calls: ~12% fewer calls a minute with 2,048 cells
# a sequence than with 1,024).


@dataclass
class _Request:
    tokens: list[int]
    grammar: str
    temperature: float
    max_tokens: int
    seed: int
    future: Future = field(default_factory=Future)


@dataclass
class _Slot:
    request: _Request
    chain: object
    grammar: object
    pos: int
    row: int = -1  # this sequence's row of logits in the last decoded batch
    out: list[int] = field(default_factory=list)


class BatchedEngine:
    """Serves `generate` calls from many threads with up to `parallel` sequences in flight."""

    def __init__(self, llama, parallel: int, n_ctx_per_seq: int, n_threads: int):
        import llama_cpp
        from llama_cpp import _internals, llama_chat_format

        self.lib, self.llama, self.parallel, self.n_ctx_per_seq = llama_cpp, llama, parallel, n_ctx_per_seq
        self.vocab = llama._model.vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        def context(n_ctx: int):
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_batch = STEP_TOKENS + parallel
            params.n_ubatch = 512
            params.n_seq_max = parallel + 1
            params.kv_unified = True  # copied prefixes share cells (per-sequence streams copy whole buffers: measured slower)
            params.n_threads = params.n_threads_batch = n_threads
            return _internals.LlamaContext(model=llama._model, params=params, verbose=False)

        # replies are decoded in `ctx`, whose pool holds every sequence in flight (requests are admitted while their
        # worst case fits); prompts in `prompt_ctx`, which holds only the shared prefix and the prompts of one step.
        # In one pool, a prompt written into the cells that finished sequences left scattered costs its attention
        # over every tile it touches (llama.cpp's tiled attention skips only tiles masked whole): prompt steps ran
        # ~490 tokens/s there against ~700 in a clean context (scratch profiles, 48 queries calls).
        self.cells = n_ctx_per_seq + CELLS_PER_SEQ * parallel
        self.ctx = context(self.cells)
        self.prompt_ctx = context(n_ctx_per_seq + STEP_TOKENS)
        self.memory = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.prompt_memory = llama_cpp.llama_get_memory(self.prompt_ctx.ctx)
        self.batch = llama_cpp.llama_batch_init(STEP_TOKENS + parallel, 0, 1)
        eos, bos = llama.token_eos(), llama.token_bos()
        self.formatter = llama_chat_format.Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"], eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llama._model.token_get_text(bos) if bos != -1 else "")
        self.prefix_seq = parallel
        self.prefix: list[int] = []
        self.grammars: dict[str, str] = {}
        self.pending: list[_Request] = []
        self.cond = threading.Condition()
        self.closed = False
        self.candidates = np.zeros(self.n_vocab, dtype=[("id", np.intc), ("logit", np.single), ("p", np.single)])
        self.thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self.thread.start()

    # ---- callers' side
    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        prompt = self.formatter(messages=messages)
        tokens = self.llama.tokenize(prompt.prompt.encode("utf-8"), add_bos=not prompt.added_special, special=True)
        if len(tokens) >= self.n_ctx_per_seq:
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit the context ({self.n_ctx_per_seq})")
        request = _Request(tokens, self._grammar(schema), temperature, min(max_tokens, self.n_ctx_per_seq - len(tokens)), seed)
        with self.cond:
            if self.closed:
                raise RuntimeError("the batched engine is closed")
            self.pending.append(request)
            self.cond.notify()
        return request.future.result()

    def _grammar(self, schema: dict) -> str:
        from llama_cpp import llama_grammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self.grammars:
            self.grammars[key] = llama_grammar.json_schema_to_gbnf(json.dumps(schema))
        return self.grammars[key]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join(timeout=30)

    # ---- the decoding thread
    def _loop(self) -> None:
        slots: dict[int, _Slot] = {}
        while True:
            with self.cond:
                while not self.pending and not slots and not self.closed:
                    self.cond.wait()
                if self.closed and not slots:
                    for r in self.pending:
                        r.future.set_exception(RuntimeError("the batched engine is closed"))
                    return
                admitted = self._admit(slots)
            try:
                self._step(slots, admitted)
            except Exception as exc:  # a failed decode fails the calls in flight, not the engine
                for slot in slots.values():
                    self._free(slot)
                    if not slot.request.future.done():
                        slot.request.future.set_exception(exc)
                slots.clear()
                self.lib.llama_memory_clear(self.memory, True)
                self.lib.llama_memory_clear(self.prompt_memory, True)
                self.prefix = []

    def _admit(self, slots: dict[int, _Slot]) -> list[tuple[int, int]]:
        """Move pending requests into free sequences while the step has room and the KV pool holds every
        admitted sequence's worst case (prompt + max_tokens: the reply pool holds each whole prompt; the prefix's
        length, which lives in the prompt context, is counted once more as a margin);
        returns (seq, shared prefix length). A request alone always fits: it is shorter than n_ctx_per_seq."""
        admitted, budget = [], STEP_TOKENS
        reserved = len(self.prefix) + sum(len(s.request.tokens) + s.request.max_tokens for s in slots.values())
        for seq in range(self.parallel):
            if not self.pending:
                break
            if seq in slots:
                continue
            head = self.pending[0]
            shared = _common(self.prefix, head.tokens)
            shared = shared if shared >= MIN_SHARED else 0
            if reserved + len(head.tokens) + head.max_tokens > self.cells:
                if slots:
                    break  # in arrival order: a long request waits for room rather than being overtaken
                shared = 0  # alone: it replaces the prefix, so only its own cells are held
            if len(head.tokens) - shared > budget:
                break
            request = self.pending.pop(0)
            grammar = self._grammar_sampler(request.grammar)
            if not grammar:  # llama.cpp could not parse it: this call fails, the others go on
                request.future.set_exception(ValueError("llama.cpp rejected the grammar made from the reply's JSON schema"))
                continue
            budget -= len(request.tokens) - shared
            reserved += len(request.tokens) + request.max_tokens
            slots[seq] = _Slot(request, self._chain(request), grammar, pos=len(request.tokens))
            admitted.append((seq, shared))
        return admitted

    def _step(self, slots: dict[int, _Slot], admitted: list[tuple[int, int]]) -> None:
        if admitted:
            self._prompts(slots, admitted)
        lib, batch = self.lib, self.batch
        fresh = {seq for seq, _ in admitted}
        batch.n_tokens = 0
        for seq, slot in slots.items():
            if seq not in fresh:
                slot.row = self._add(slot.out[-1], slot.pos, seq, True)
                slot.pos += 1
        if batch.n_tokens:
            _decode(lib, self.ctx, batch)
        for seq in list(slots):
            slot = slots[seq]
            token = self._sample(slot, self.prompt_ctx if seq in fresh else self.ctx)
            if lib.llama_vocab_is_eog(self.vocab, token) or len(slot.out) >= slot.request.max_tokens:
                text = self.llama.detokenize(slot.out).decode("utf-8", errors="ignore")
                slot.request.future.set_result(Reply(text, len(slot.request.tokens), len(slot.out)))
                self._free(slot)
                lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
                del slots[seq]
            else:
                slot.out.append(token)

    def _prompts(self, slots: dict[int, _Slot], admitted: list[tuple[int, int]]) -> None:
        """Decode the admitted prompts in the prompt context (a shared prefix is copied there, not computed),
        then move each sequence's KV cells into the reply pool; their first reply tokens are sampled from the
        prompt context's logits."""
        lib, batch, memory = self.lib, self.batch, self.prompt_memory
        batch.n_tokens = 0
        for seq, shared in admitted:  # copies first: a new prefix below replaces the one they copy from
            lib.llama_memory_seq_rm(memory, seq, -1, -1)
            if shared:
                lib.llama_memory_seq_cp(memory, self.prefix_seq, seq, 0, shared)
        new_prefix = next((seq for seq, shared in admitted if not shared), None)
        if new_prefix is not None:  # this prompt becomes the prefix the next requests may share
            lib.llama_memory_seq_rm(memory, self.prefix_seq, -1, -1)
        for seq, shared in admitted:
            tokens = slots[seq].request.tokens
            owner = self.prefix_seq if seq == new_prefix else seq  # decoded once, then shared
            for p in range(shared, len(tokens)):
                slots[seq].row = self._add(tokens[p], p, owner, p == len(tokens) - 1)
        _decode(lib, self.prompt_ctx, batch)
        if new_prefix is not None:
            self.prefix = list(slots[new_prefix].request.tokens)
            lib.llama_memory_seq_cp(memory, self.prefix_seq, new_prefix, -1, -1)
        for seq, _ in admitted:
            size = lib.llama_state_seq_get_size(self.prompt_ctx.ctx, seq)
            state = (ctypes.c_uint8 * size)()
            if lib.llama_state_seq_get_data(self.prompt_ctx.ctx, state, size, seq) != size:
                raise RuntimeError("llama.cpp could not read a prompt's KV cells")
            lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
            if lib.llama_state_seq_set_data(self.ctx.ctx, state, size, seq) != size:
                raise RuntimeError("llama.cpp could not place a prompt's KV cells in the reply pool")
            lib.llama_memory_seq_rm(memory, seq, -1, -1)

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        b, j = self.batch, self.batch.n_tokens
        b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, pos, 1, logits
        b.seq_id[j][0] = seq
        b.n_tokens = j + 1
        return j

    # ---- sampling
    def _chain(self, request: _Request):
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if request.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        for s in (lib.llama_sampler_init_top_k(40), lib.llama_sampler_init_typical(1.0, 1), lib.llama_sampler_init_top_p(0.95, 1),
                  lib.llama_sampler_init_min_p(0.05, 1), lib.llama_sampler_init_temp(request.temperature),
                  lib.llama_sampler_init_dist(request.seed & 0xFFFFFFFF)):
            lib.llama_sampler_chain_add(chain, s)
        return chain

    def _grammar_sampler(self, grammar: str):
        return self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode("utf-8"), b"root")

    def _free(self, slot: _Slot) -> None:
        for s in (slot.chain, slot.grammar):
            if s:
                self.lib.llama_sampler_free(s)
        slot.chain = slot.grammar = None

    def _sample(self, slot: _Slot, ctx) -> int:
        lib = self.lib
        token = lib.llama_sampler_sample(slot.chain, ctx.ctx, slot.row)
        if not self._allowed(slot.grammar, token):  # resample over the tokens the grammar allows
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx.ctx, slot.row), shape=(self.n_vocab,))
            cand = self.candidates
            cand["id"], cand["logit"], cand["p"] = np.arange(self.n_vocab), logits, 0.0
            arr = lib.llama_token_data_array(data=cand.ctypes.data_as(lib.llama_token_data_p), size=self.n_vocab, selected=-1, sorted=False)
            lib.llama_sampler_apply(slot.grammar, ctypes.byref(arr))
            lib.llama_sampler_apply(slot.chain, ctypes.byref(arr))
            token = int(cand["id"][arr.selected])
        lib.llama_sampler_accept(slot.grammar, token)
        return token

    def _allowed(self, grammar, token: int) -> bool:
        one = (self.lib.llama_token_data * 1)()
        one[0].id, one[0].logit, one[0].p = token, 1.0, 0.0
        arr = self.lib.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        self.lib.llama_sampler_apply(grammar, ctypes.byref(arr))
        return not math.isinf(one[0].logit)


def _decode(lib, ctx, batch) -> None:
    rc = lib.llama_decode(ctx.ctx, batch)
    if rc != 0:
        raise RuntimeError(f"llama_decode returned {rc}")


def _common(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i if i < len(b) else len(b) - 1  # the last prompt token is always decoded: its logits start the reply
