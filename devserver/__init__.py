"""A development stand-in for a text-generation-inference (TGI) model server, also OpenAI-compatible.

It speaks TGI's HTTP wire protocol closely enough for the `text_generation` client and our own
backend: `POST /` (TGI's compat route, the one the client really uses), `POST /generate`,
`POST /generate_stream` (server-sent events framed as `data:{json}\\n\\n`), `GET /info`,
`GET /health` and `GET /metrics`. Replies are deterministic (see `devserver.text`) and are
paced like a GPU would: `time_to_first_token`, then `tokens_per_second`.

The same server also speaks OpenAI's chat-completions protocol as vLLM serves it (`openai_chat`):
`POST /v1/chat/completions` (one `chat.completion`, or `data: {chunk}\\n\\n` events: a role chunk,
one chunk per token, a final chunk with `finish_reason`, a usage chunk if
`stream_options.include_usage`, then `data: [DONE]`; `: keep-alive` comments while a time to first
token of 1 s or more runs) and `GET /v1/models`. Its chat template is Zephyr's, so a conversation
gets the reply TGI's routes give for the same conversation as a Zephyr prompt. With
`DevServerConfig(api_key=...)` (`--api-key`), `/v1/*` needs `Authorization: Bearer <key>` (401
otherwise); an unknown `model` is a 404, a conversation past the context a 400 in vLLM's words.
Pacing, concurrency slots, observer calls and counters are shared with TGI's routes.

Like TGI, the server rejects work past `max_concurrent_requests` instead of queueing it: `/generate`
answers HTTP 429, streaming routes answer HTTP 200 with a single overloaded error event.

Faults, for testing how clients cope (development only):

- `overload`        answer as TGI does past its concurrency limit (429 / error event in the stream)
- `overload-http`   HTTP 429 with TGI's JSON error body on every route, streaming ones included
- `error-mid-stream` after N tokens, a `generation` error event (HTTP 424 for `/generate`)
- `cut`             after N tokens, end the stream cleanly with no final event
                    (`/generate` answers 500 `incomplete_generation`, as TGI does in that case)
- `stall`           after N tokens, send nothing for `stall_seconds`, then carry on
- `drop`            after N tokens, abort the TCP connection
- `http-500`        HTTP 500 with an HTML error page, like a proxy in front of a dead server
- `unhealthy`       `/health` answers 503; generation keeps working

On `/v1/chat/completions` the same modes mean: `overload` and `overload-http` an HTTP 429 with
`Retry-After: 1` (or `retry_after`, `--retry-after`) and an OpenAI error body; `error-mid-stream`
after N tokens `data: {"error": {"message", "type": "InternalServerError", "code": 500}}` then `data: [DONE]`
(vLLM; HTTP 500 when not streaming); `cut` after N tokens the end of the stream with no
`finish_reason` chunk and no `[DONE]` (HTTP 500 when not streaming); `stall`, `drop`, `http-500` as
above. Three modes only this route acts on (TGI's routes ignore them, and answer as if healthy):

- `error-mid-stream-tgi` after N tokens, TGI's Messages API error `{"error": {"message",
                    "http_status_code": 500}}` then `data: [DONE]` (HTTP 500 when not streaming)
- `content-filter`  after N tokens, the final chunk's `finish_reason` is `content_filter`
- `unauthorized`    HTTP 401 `invalid_api_key`, as for a wrong API key

N is `fault_after_tokens`; if the reply is shorter, the fault fires before the final token, so it
always shows. A fault set in the config or at runtime applies to generation requests (to `/health`
answers for `unhealthy`), and `fault_count` of them at most, after which the server is healthy
again (`None` = for ever). Switch it at runtime, without a restart:

    POST /__devserver__/fault  {"fault": "cut" | null, "after_tokens": 3, "count": 1 | null}
    GET  /__devserver__/fault  -> the current state

What a client's own concurrency limit is measured by: the most generation requests admitted at
once (both protocols' routes), since the start or the last reset:

    GET  /__devserver__/stats        -> {"in_flight", "peak_in_flight", "requests", "successes"}
    POST /__devserver__/stats/reset  the peak starts again from the requests in flight now

Per-request trigger, for browser and integration tests: a prompt containing the marker
`[[devserver:<mode>]]` or `[[devserver:<mode>:<after_tokens>]]` (e.g. `[[devserver:cut:3]]`) gets
that fault, for that request only; it does not use up `fault_count` (`unhealthy` and unknown modes
are ignored). Markers are removed from the prompt before the reply is made, so the reply is the
same as without them.

`[[devserver:echo]]` anywhere in the prompt makes the reply the prompt's last user message exactly,
with the marker removed: tests use it to make a model say something chosen (markup, "I am
ChatGPT, made by OpenAI"). It is tokenised and streamed like any reply (and cut by
`max_new_tokens`, stop sequences and fault markers, e.g. `[[devserver:echo]] [[devserver:cut:3]]`),
but not shortened to the usual reply length.

A prompt laid out as MT-Bench's pairwise judge prompt (both answers between `[The Start of
Assistant A's Answer]` / `[The End of Assistant A's Answer]` and B's) is answered as a judge would:
a short judgement ending in `[[A]]`, `[[B]]` or `[[C]]`, made from the answers' content
(`judging`: the longer answer wins, a tie within a tenth), so judged runs are deterministic.

To watch the streams it sends (when each token is written, e.g. for a benchmark), pass
`DevServerConfig(observer=...)` a `StreamObserver`.

Run it with `python -m devserver --model-id zephyr-7b-beta --port 8081`; tests use
`serve_in_thread()`. A development tool: it needs aiohttp and the standard library only, and
neither `arena` nor `inference` imports it.

Modules: `config` (DevServerConfig, command-line options), `text` (the replies and their tokens),
`judging` (the pairwise judge's verdicts), `faults` (the fault switch and prompt markers),
`generation` (TGI's checks, what a reply is), `tgi` (TGI's routes and SSE framing), `openai_chat`
(the OpenAI-compatible routes and their errors), `openai_stream` (chat completions, streamed or
not), `state` (a running server's counters), `observer` (the stream hook), `app` (the aiohttp
application, `run`, `serve_in_thread`).
"""

from devserver.app import serve_in_thread
from devserver.config import FAULT_MODES, DevServerConfig
from devserver.observer import StreamObserver

__all__ = ["FAULT_MODES", "DevServerConfig", "StreamObserver", "serve_in_thread"]
