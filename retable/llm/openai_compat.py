"""Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp's server) through the `openai` SDK."""

from __future__ import annotations

import os

from retable.llm.base import LLM, Message, Reply
from retable.errors import EndpointDown, UserError


def resolve_api_key(explicit: str | None) -> str:
    """Explicit flag, then RETABLE_API_KEY, then OPENAI_API_KEY; local servers accept any key."""
    return explicit or os.environ.get("RETABLE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "not-needed"


def _refuses_json_schema(exc) -> bool:
    """Servers without `json_schema` response formats (llama.cpp's Python server answers 500, others
    400/422) name the field in their error; then the backend falls back to json_object + schema."""
    return exc.status_code in (400, 422, 500) and ("response_format" in str(exc) or "json_schema" in str(exc))


class OpenAICompatLLM(LLM):
    backend = "openai"
    parallel_safe = True
    supports_schema = True

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 3):
        base_url = base_url or os.environ.get("RETABLE_BASE_URL")
        model = model or os.environ.get("RETABLE_MODEL")
        if not model:
            raise UserError("the openai backend needs a model name — pass --model NAME or set RETABLE_MODEL")
        super().__init__(model)
        self.base_url = base_url
        self._api_key = resolve_api_key(api_key)
        self._timeout, self._retries = timeout, max_retries
        self._mode = "json_schema"  # falls back to llama.cpp-style json_object + schema when refused
        self._connect()

    def _connect(self) -> None:
        import openai

        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self._timeout, max_retries=self._retries)

    def __getstate__(self) -> dict:  # Ray ships backends to its workers; the HTTP client is rebuilt there
        return {k: v for k, v in self.__dict__.items() if k not in ("_openai", "_client")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._connect()

    def _where(self) -> str:
        return self.base_url or "the OpenAI API"

    def check_reachable(self) -> None:
        """Fail fast, before any stage runs, when nothing answers at the base URL."""
        try:
            self._client.with_options(timeout=5.0, max_retries=0).models.list()
        except self._openai.APIConnectionError:
            raise EndpointDown(f"no LLM reachable at {self._where()} — start one or drop --base-url to use the embedded model") from None
        except self._openai.AuthenticationError:
            raise UserError(f"{self._where()} refused the API key — pass --api-key or set RETABLE_API_KEY") from None
        except self._openai.APIStatusError:
            pass  # some servers do not serve /models; the first real call will tell

    def _response_format(self, schema: dict) -> dict:
        if self._mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": schema.get("title", "reply"), "schema": schema}}
        return {"type": "json_object", "schema": schema}

    def _status_error(self, exc) -> UserError:
        if exc.status_code in (401, 403):
            return UserError(f"{self._where()} refused the API key — pass --api-key or set RETABLE_API_KEY")
        failure = EndpointDown if exc.status_code in (408, 409, 429) or exc.status_code >= 500 else UserError  # another replica may do better
        return failure(f"LLM server at {self._where()} failed with HTTP {exc.status_code} "
                       "after retries — check the server and rerun; finished calls are cached")

    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        while True:
            try:
                out = self._client.chat.completions.create(
                    model=self.model, messages=messages, temperature=temperature, max_tokens=max_tokens, seed=seed,
                    response_format=self._response_format(schema),
                )
                break
            except self._openai.APIStatusError as exc:
                if self._mode == "json_schema" and _refuses_json_schema(exc):
                    self._mode = "json_object"
                    continue
                raise self._status_error(exc) from None
            except self._openai.APITimeoutError:
                raise EndpointDown(f"the LLM at {self._where()} did not answer within {self._timeout:g} s, {self._retries} retries included — check "
                                   "the server or raise llm_timeout; finished calls are cached") from None
            except self._openai.APIConnectionError:
                raise EndpointDown(f"no LLM reachable at {self._where()} — start one or drop --base-url to use the embedded model") from None
            except self._openai.APIResponseValidationError:
                out = None
                break
        if not getattr(out, "choices", None):
            raise EndpointDown(f"the server at {self._where()} did not answer with an OpenAI chat completion — check that --base-url is an "
                               "OpenAI-compatible /v1 endpoint; finished calls are cached")
        usage = out.usage
        return Reply(out.choices[0].message.content or "", usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)
