"""The aiohttp application, and the two ways to run it: in the foreground, or on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator

from aiohttp import web

from devserver import openai_chat, tgi
from devserver.config import DevServerConfig
from devserver.faults import FaultState, fault_state_from_body
from devserver.state import OUTCOME, STATE, ServerState

log = logging.getLogger("devserver")


# --- runtime fault switch and counters -------------------------------------------------------

async def fault_get(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].fault.as_json())


async def fault_set(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.fault = fault_state_from_body(await request.json(), state.config.fault_after_tokens)
    except ValueError as exc:
        return tgi.error_response({"error": str(exc), "error_type": "validation"}, 400)
    log.info("fault set to %s", state.fault.as_json())
    return web.json_response(state.fault.as_json())


async def stats_get(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def stats_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats_reset()
    return web.json_response(state.stats())


# --- the application -------------------------------------------------------------------------

@web.middleware
async def _log_request(request: web.Request, handler) -> web.StreamResponse:
    """One line per request, written when it ends (for a stream: after its last event)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    status: int | str = "error"
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = "cancelled (client went away)"
        raise
    finally:
        outcome = request.get(OUTCOME)
        log.info("%s %s %s %.2fs%s", request.method, request.path, status, loop.time() - started,
                 f" [{outcome}]" if outcome else "")


def build_app(config: DevServerConfig) -> web.Application:
    app = web.Application(middlewares=[_log_request])
    fault = FaultState(config.fault, config.fault_after_tokens, config.fault_count if config.fault else None)
    app[STATE] = ServerState(config=config, fault=fault)
    tgi.add_routes(app)
    openai_chat.add_routes(app)
    app.router.add_get("/__devserver__/fault", fault_get)
    app.router.add_post("/__devserver__/fault", fault_set)
    app.router.add_get("/__devserver__/stats", stats_get)
    app.router.add_post("/__devserver__/stats/reset", stats_reset)
    return app


# handler_cancellation: a client that hangs up cancels its request, as it does in TGI's batch.
_SERVER_OPTIONS = {"access_log": None, "handler_cancellation": True}


def _describe(config: DevServerConfig) -> str:
    fault = f", fault {config.fault} after {config.fault_after_tokens} tokens" if config.fault else ""
    return (f"model {config.model_id}, time to first token {config.time_to_first_token}s, "
            f"{config.tokens_per_second} tokens/s, max {config.max_concurrent_requests} concurrent{fault}")


def run(config: DevServerConfig, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Serve until interrupted (Ctrl+C / SIGTERM)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    log.info("TGI dev server on http://%s:%s (%s)", host, port, _describe(config))
    web.run_app(build_app(config), host=host, port=port, print=None, shutdown_timeout=2.0, **_SERVER_OPTIONS)


@contextlib.contextmanager
def serve_in_thread(config: DevServerConfig, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the server on a background thread with its own event loop; yields its base URL."""
    runner = web.AppRunner(build_app(config), shutdown_timeout=0.5, **_SERVER_OPTIONS)
    ready = threading.Event()
    loop_holder: dict = {}

    async def serve() -> None:
        stop = asyncio.Event()
        loop_holder["loop"], loop_holder["stop"] = asyncio.get_running_loop(), stop
        try:
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
        except BaseException as exc:
            loop_holder["error"] = exc
            raise
        finally:
            ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="tgi-devserver", daemon=True)
    thread.start()
    ready.wait()
    if "error" in loop_holder:
        thread.join()
        raise loop_holder["error"]
    bound_port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        loop_holder["loop"].call_soon_threadsafe(loop_holder["stop"].set)
        thread.join(timeout=10)
