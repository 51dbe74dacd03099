"""docker-compose.yml, checked without a Docker engine: schema, wiring, GPUs, pins and secrets."""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import re
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from arena.management.commands.models_sync import entries_parse
from inference.chat_templates import PRESETS

from .stack import (
    APP_SERVICES,
    COMPOSE,
    ENV_EXAMPLE,
    ROOT,
    SCHEMA,
    command_argv,
    compose_raw,
    compose_resolved,
    compose_text,
    container_env,
    deployment_env,
    env_example,
    variables_referenced,
)

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference"
VLLM_IMAGE = "vllm/vllm-openai"
VLLM_PROFILE = "vllm"
# Services that call model servers, and so get the hosted models' API keys (and nothing else does).
KEYED_SERVICES = ("web", "worker")
MODEL_KEYS = ("OPENAI_API_KEY",)
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY")
# Variables Compose itself reads from .env (not the file's interpolation).
COMPOSE_OWN_VARIABLES = {"COMPOSE_PROFILES"}
REFERENCE_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?])[^}]*)?\}$")


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return deployment_env()


@pytest.fixture(scope="module")
def compose(env) -> dict:
    return compose_resolved(env)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def tgi_services(services: dict) -> dict:
    return {name: s for name, s in services.items() if s.get("image", "").startswith(TGI_IMAGE + ":")}


def profiled(services: dict, profile: str) -> set[str]:
    return {name for name, s in services.items() if profile in (s.get("profiles") or [])}


def enabled(services: dict, profiles: tuple[str, ...] = ()) -> set[str]:
    """The services `docker compose up` starts with these profiles active."""
    return {name for name, s in services.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}


def schema_errors(schema: dict, document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def duration_seconds(text: str) -> float:
    """A Compose duration ('1m30s', '20m', '1h') in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --- The Compose specification --------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec_schema(schema):
    assert schema_errors(schema, compose_raw()) == []


def test_compose_file_still_validates_once_variables_are_filled_in(schema, compose):
    assert schema_errors(schema, compose) == []


def test_the_schema_check_catches_mistakes(schema):
    broken = copy.deepcopy(compose_raw())
    broken["services"]["web"]["helthcheck"] = broken["services"]["web"].pop("healthcheck")
    broken["services"]["redis"]["depends_on"] = {"postgres": {"condition": "service_is_up"}}
    errors = schema_errors(schema, broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any("service_is_up" in e for e in errors), errors


def test_check_jsonschema_cli_accepts_the_compose_file():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), str(COMPOSE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_vendored_schema_is_the_published_one():
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    notes = (SCHEMA.parent / "README.md").read_text()
    assert digest in notes, "tests/deploy/data/README.md must state the schema's checksum"
    assert "Apache License" in (SCHEMA.parent / "LICENSE.compose-spec").read_text()
    assert "compose-spec/compose-spec" in notes and "check-jsonschema" in notes and "0.39.0" in notes
    try:
        installed = importlib.metadata.version("check-jsonschema")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("check-jsonschema is not installed")
    if installed == "0.39.0":
        import check_jsonschema

        vendored = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
        assert vendored.read_bytes() == SCHEMA.read_bytes()


# --- Services and wiring --------------------------------------------------------------------


def test_every_service_the_arena_needs_is_there(services):
    for name in ("web", "worker", "beat", "migrate", "redis", "postgres"):
        assert name in services, f"missing service {name}"
    assert len(tgi_services(services)) >= 2, "at least two TGI model servers"


def test_app_services_reach_postgres_and_redis_inside_the_stack(services, env):
    pg = services["postgres"]
    pg_env = container_env(pg, env)
    for name in (*APP_SERVICES, "migrate"):
        app_env = container_env(services[name], env)
        db = urlsplit(app_env["DATABASE_URL"])
        assert db.scheme in ("postgres", "postgresql")
        assert db.hostname == "postgres" and db.hostname in services
        assert (db.port or 5432) == 5432
        assert db.username == pg_env["POSTGRES_USER"]
        assert db.password == pg_env["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
        assert db.path.lstrip("/") == pg_env["POSTGRES_DB"]
        redis_url = urlsplit(app_env["REDIS_URL"])
        assert redis_url.scheme == "redis" and redis_url.hostname == "redis" and redis_url.hostname in services
        assert (redis_url.port or 6379) == 6379
        assert app_env["DEBUG"] == "false"
        assert app_env["SECRET_KEY"] == env["SECRET_KEY"]
        assert app_env["ALLOWED_HOSTS"] == env["ALLOWED_HOSTS"]
        assert app_env["SECURE_SSL"] == "true"


def test_app_services_wait_for_healthy_data_stores_and_the_migration(services):
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_data_stores_have_health_checks_and_pinned_images(services, compose):
    pg, redis = services["postgres"], services["redis"]
    assert re.fullmatch(r"postgres:16\.\d+(-[a-z0-9.]+)?", pg["image"]), pg["image"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+-alpine", redis["image"]), redis["image"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert redis["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    volume = next(v for v in pg["volumes"] if v.endswith(":/var/lib/postgresql/data"))
    assert volume.split(":")[0] in compose["volumes"], "PostgreSQL data lives in a named volume"


def test_migrate_runs_migrations_then_the_model_sync_once(services):
    migrate = services["migrate"]
    script = " ".join(command_argv(migrate["command"]))
    assert script.index("manage.py migrate") < script.index("manage.py models_sync")
    assert "&&" in script, "models_sync must not run when the migration failed"
    assert migrate["restart"] == "no"


def test_web_runs_uvicorn_behind_a_proxy(services):
    web = services["web"]
    argv = command_argv(web["command"])
    assert argv[:2] == ["uvicorn", "config.asgi:application"]
    assert "--host=0.0.0.0" in argv and "--port=8000" in argv
    assert "--proxy-headers" in argv
    allowed = next(a for a in argv if a.startswith("--forwarded-allow-ips="))
    raw_argv = command_argv(compose_raw()["services"]["web"]["command"])
    assert any("${TRUSTED_PROXIES" in a for a in raw_argv if a.startswith("--forwarded-allow-ips="))
    assert "127.0.0.1" in allowed, "the container's own health check comes from 127.0.0.1"
    assert "--ws-max-size=262144" in argv
    assert "--ws-per-message-deflate=false" in argv
    assert any(p.endswith(":8000") for p in web["ports"])
    assert web["healthcheck"]["test"] == ["CMD", "python", "/app/docker/healthcheck.py"]
    assert (ROOT / "docker" / "healthcheck.py").is_file()


def test_worker_uses_the_thread_pool(services):
    argv = command_argv(services["worker"]["command"])
    assert argv[:4] == ["celery", "-A", "config", "worker"]
    assert argv[argv.index("--pool") + 1] == "threads"
    assert argv[argv.index("--concurrency") + 1] == "64"
    assert "--without-gossip" in argv and "--without-mingle" in argv
    raw_argv = command_argv(compose_raw()["services"]["worker"]["command"])
    assert "${WORKER_CONCURRENCY:-64}" in raw_argv
    assert "inspect ping" in services["worker"]["healthcheck"]["test"][1]


def test_beat_keeps_its_schedule_in_a_writable_place(services):
    beat = services["beat"]
    argv = command_argv(beat["command"])
    assert argv[:4] == ["celery", "-A", "config", "beat"]
    schedule = argv[argv.index("--schedule") + 1]
    assert schedule.startswith("/tmp/"), "the app user (uid 10001) can write /tmp, not /app"
    assert "replicas" not in (beat.get("deploy") or {}), "exactly one beat"


# --- Model servers --------------------------------------------------------------------------


def test_each_tgi_service_reserves_its_gpu_and_is_configured_for_serving(services):
    for name, tgi in tgi_services(services).items():
        tag = tgi["image"].rsplit(":", 1)[1]
        assert re.fullmatch(r"3\.3\.\d+", tag), f"{name}: pin a 3.3.x tag, not {tag!r}"
        devices = tgi["deploy"]["resources"]["reservations"]["devices"]
        assert any(
            d["driver"] == "nvidia" and "gpu" in d["capabilities"] and d.get("device_ids") for d in devices
        ), name
        assert tgi["shm_size"] == "1g", name
        assert any(v.endswith(":/data") for v in tgi["volumes"]), name
        assert container_env(tgi, {})["HF_HOME"] == "/data", name
        test = tgi["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "curl" and test[-1] == "http://localhost:80/health", name
        assert duration_seconds(tgi["healthcheck"]["start_period"]) >= 600, f"{name}: weights take minutes to download"
        argv = command_argv(tgi["command"])
        assert argv[argv.index("--model-id") + 1].count("/") == 1, name
        max_input = int(argv[argv.index("--max-input-tokens") + 1])
        max_total = int(argv[argv.index("--max-total-tokens") + 1])
        assert 0 < max_input < max_total, name


def test_the_model_servers_get_different_gpus_by_default(services):
    gpu_servers = [*tgi_services(services), "vllm"]
    ids = [
        tuple(d["device_ids"])
        for name in gpu_servers
        for d in services[name]["deploy"]["resources"]["reservations"]["devices"]
    ]
    assert len(ids) == 3 and len(set(ids)) == len(ids), ids
    raw = compose_raw()["services"]
    for name in gpu_servers:
        (device,) = raw[name]["deploy"]["resources"]["reservations"]["devices"]
        assert all(i.startswith("${") for i in device["device_ids"]), f"{name}: GPU id overridable from .env"


def test_gated_model_gets_the_hugging_face_token_from_the_environment(services, env):
    mistral = services["tgi-mistral"]
    assert "mistralai/Mistral-7B-Instruct-v0.2" in command_argv(mistral["command"])
    assert container_env(mistral, env)["HF_TOKEN"] == env["HF_TOKEN"]
    raw = compose_raw()["services"]["tgi-mistral"]["environment"]["HF_TOKEN"]
    assert raw.startswith("${HF_TOKEN:?"), "fail loudly when the token is missing"


def test_arena_models_register_the_tgi_services(services):
    text = container_env(services["migrate"], {})["ARENA_MODELS"]
    entries = entries_parse(text, "ARENA_MODELS")  # the command's own validation
    by_name = {e["name"]: e for e in entries}
    assert set(by_name) >= {"zephyr-7b-beta", "mistral-7b-instruct-v0.2"}
    assert by_name["zephyr-7b-beta"]["template"] == "zephyr"
    assert by_name["mistral-7b-instruct-v0.2"]["template"] == "mistral-instruct"
    assert urlsplit(by_name["zephyr-7b-beta"]["endpoint_url"]).hostname == "tgi-zephyr"
    assert urlsplit(by_name["mistral-7b-instruct-v0.2"]["endpoint_url"]).hostname == "tgi-mistral"
    served = set()
    for entry in entries:
        url = urlsplit(entry["endpoint_url"])
        assert url.scheme == "http" and url.hostname in tgi_services(services), entry
        assert url.port == 80, "TGI's image listens on port 80"
        assert entry["template"] in PRESETS
        served.add(url.hostname)
    assert served == set(tgi_services(services)), "every GPU server is drawn into battles"


# --- The vLLM server (profile `vllm`) --------------------------------------------------------


def _flag(argv: list[str], name: str) -> str | None:
    at = argv.index(name) + 1 if name in argv else len(argv)
    return argv[at] if at < len(argv) else None


def _gigabytes(size: object) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", str(size or "0").lower())
    assert match, f"not a size: {size!r}"
    return float(match[1]) * {"": 1e-9, "k": 1e-6, "m": 1e-3, "g": 1}[match[2]]


def _depends(service: dict) -> set[str]:
    depends = service.get("depends_on") or {}
    return set(depends)


def vllm_problems(compose: dict, env: dict[str, str]) -> list[str]:
    """What is wrong with the vLLM server and its registration in a resolved compose file."""
    services = compose["services"]
    if "vllm" not in services or "vllm-register" not in services:
        return ["the vllm and vllm-register services are missing"]
    return [*_profile_problems(services), *_vllm_server_problems(services["vllm"], env),
            *_registration_problems(services, env)]


def _profile_problems(services: dict) -> list[str]:
    problems = [
        f"{name}: must be in the {VLLM_PROFILE!r} profile, so a plain `up` needs no third GPU"
        for name in ("vllm", "vllm-register") if services[name].get("profiles") != [VLLM_PROFILE]
    ]
    for profiles in ((), (VLLM_PROFILE,)):
        active = enabled(services, profiles)
        problems.extend(
            f"{name} depends on {', '.join(sorted(missing))}, not started with profiles {profiles}"
            for name in sorted(active) if (missing := _depends(services[name]) - active)
        )
    return problems


def _vllm_server_problems(vllm: dict, env: dict[str, str]) -> list[str]:
    problems = []
    repository, _, tag = str(vllm.get("image", "")).rpartition(":")
    if repository != VLLM_IMAGE or not re.fullmatch(r"v\d+\.\d+\.\d+", tag):
        problems.append(f"image: pin a released {VLLM_IMAGE} tag (vX.Y.Z), not {vllm.get('image')!r}")
    devices = (((vllm.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    if not any(
        d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or []) and len(d.get("device_ids") or []) == 1
        for d in devices
    ):
        problems.append("deploy: reserve one NVIDIA GPU by its device id")
    argv = command_argv(vllm.get("command") or [])
    model = _flag(argv, "--model")
    if not model or model.count("/") != 1:
        problems.append(f"command: --model must name a Hugging Face model (org/name), got {model!r}")
    port = int(_flag(argv, "--port") or 8000)
    health = vllm.get("healthcheck") or {}
    test = health.get("test") or []
    if test[:2] != ["CMD", "curl"] or test[-1] != f"http://localhost:{port}/health":
        problems.append(f"healthcheck: must GET vLLM's /health on port {port}, not {test!r}")
    if duration_seconds(health.get("start_period", "0s")) < 600:
        problems.append("healthcheck: start_period must allow minutes for the weights to download")
    if vllm.get("ipc") != "host" and _gigabytes(vllm.get("shm_size")) < 1:
        problems.append("shm_size: PyTorch needs more shared memory than Docker's 64 MB (or ipc: host)")
    if container_env(vllm, env).get("HF_TOKEN") != env.get("HF_TOKEN"):
        problems.append("environment: HF_TOKEN must come from .env, for a gated model")
    if not any(str(v).endswith(":/root/.cache/huggingface") for v in vllm.get("volumes") or []):
        problems.append("volumes: keep the Hugging Face cache (the weights) in a volume")
    return problems


def _registration_problems(services: dict, env: dict[str, str]) -> list[str]:
    """vllm-register's one ARENA_MODELS entry must be the server's model, at its address."""
    register, argv = services["vllm-register"], command_argv(services["vllm"].get("command") or [])
    problems = []
    register_argv = " ".join(command_argv(register.get("command") or []))
    if "manage.py models_sync" not in register_argv:
        problems.append(f"vllm-register: must run manage.py models_sync, not {register_argv!r}")
    condition = ((register.get("depends_on") or {}).get("migrate") or {}).get("condition")
    if condition != "service_completed_successfully":
        problems.append("vllm-register: must wait for migrate to have succeeded (the schema must exist)")
    plain = entries_parse(container_env(services["migrate"], env)["ARENA_MODELS"], "migrate ARENA_MODELS")
    if any(urlsplit(e["endpoint_url"]).hostname in profiled(services, VLLM_PROFILE) for e in plain):
        problems.append("migrate: its ARENA_MODELS must not list vLLM's model: a plain `up` has no vLLM server")
    entries = entries_parse(container_env(register, env).get("ARENA_MODELS", "[]"), "vllm-register ARENA_MODELS")
    if len(entries) != 1:
        return [*problems, f"vllm-register: ARENA_MODELS must list vLLM's one model, not {len(entries)}"]
    (entry,) = entries
    url, port = urlsplit(entry["endpoint_url"]), int(_flag(argv, "--port") or 8000)
    if entry.get("protocol") != "openai":
        problems.append(f"entry: protocol must be openai, not {entry.get('protocol')!r}")
    if (url.scheme, url.hostname, url.port, url.path) != ("http", "vllm", port, "/v1"):
        problems.append(f"entry: url must be http://vllm:{port}/v1 (the OpenAI client's base URL), not {url.geturl()}")
    served = _flag(argv, "--served-model-name")
    if not served or entry.get("served_model") != served:
        problems.append(f"entry: served_model {entry.get('served_model')!r} must be --served-model-name {served!r}")
    max_num_seqs = _flag(argv, "--max-num-seqs")
    if max_num_seqs is not None and entry.get("max_concurrent") != int(max_num_seqs):
        problems.append(f"entry: max_concurrent {entry.get('max_concurrent')!r} must be --max-num-seqs {max_num_seqs}")
    return problems


def test_the_vllm_server_and_its_registration_are_complete(compose, env):
    assert vllm_problems(compose, env) == []
    assert enabled(compose["services"]) >= {"web", "worker", "beat", "migrate", *tgi_services(compose["services"])}
    assert profiled(compose["services"], VLLM_PROFILE) == {"vllm", "vllm-register"}


def test_the_served_name_and_the_gpu_follow_env(env):
    custom = {
        **env, "VLLM_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "VLLM_SERVED_MODEL_NAME": "llama-3.1-8b-instruct",
        "VLLM_GPU": "3",
    }
    compose = compose_resolved(custom)
    assert vllm_problems(compose, custom) == []
    vllm, register = compose["services"]["vllm"], compose["services"]["vllm-register"]
    argv = command_argv(vllm["command"])
    assert _flag(argv, "--model") == "meta-llama/Llama-3.1-8B-Instruct"
    (entry,) = entries_parse(container_env(register, custom)["ARENA_MODELS"], "ARENA_MODELS")
    assert entry["name"] == entry["served_model"] == "llama-3.1-8b-instruct"
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["3"]


def _set(path: str, value):
    def mutate(compose: dict) -> None:
        *parents, last = path.split(".")
        node = compose["services"]
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value(node.get(last)) if callable(value) else value
    return mutate


def _argv_set(flag: str, new: str):
    def replace(argv):
        argv = list(argv)
        argv[argv.index(flag) + 1] = new
        return argv
    return _set("vllm.command", replace)


def _entry_set(**changes):
    def replace(models: str):
        return json.dumps([{**e, **changes} for e in json.loads(models)])
    return _set("vllm-register.environment.ARENA_MODELS", replace)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (_set("vllm.image", "vllm/vllm-openai:latest"), "image: pin a released"),
        (_set("vllm.image", "vllm/vllm-openai"), "image: pin a released"),
        (_set("vllm.profiles", None), "vllm: must be in the 'vllm' profile"),
        (_set("vllm-register.profiles", None), "vllm-register: must be in the 'vllm' profile"),
        (_set("web.depends_on", lambda d: {**d, "vllm": {"condition": "service_healthy"}}), "web depends on vllm"),
        (_set("vllm.deploy", None), "deploy: reserve one NVIDIA GPU"),
        (_argv_set("--model", "Qwen2.5-7B-Instruct"), "--model must name a Hugging Face model"),
        (_set("vllm.healthcheck", lambda h: {**h, "test": ["CMD", "curl", "-fsS", "http://localhost:80/health"]}),
         "healthcheck: must GET vLLM's /health on port 8000"),
        (_set("vllm.healthcheck", lambda h: {**h, "start_period": "30s"}), "start_period must allow minutes"),
        (_set("vllm.shm_size", None), "shm_size:"),
        (_set("vllm.environment", lambda e: {k: v for k, v in e.items() if k != "HF_TOKEN"}), "HF_TOKEN"),
        (_set("vllm.volumes", None), "volumes:"),
        (_set("vllm-register.depends_on", None), "must wait for migrate"),
        (_set("vllm-register.command", ["python", "manage.py", "migrate"]), "must run manage.py models_sync"),
        (_argv_set("--served-model-name", "qwen"), "served_model 'qwen2.5-7b-instruct' must be --served-model-name"),
        (_argv_set("--max-num-seqs", "256"), "max_concurrent 128 must be --max-num-seqs 256"),
        (_entry_set(url="http://vllm:8000"), "entry: url must be http://vllm:8000/v1"),
        (_entry_set(url="http://tgi-zephyr:8000/v1"), "entry: url must be"),
        (_entry_set(protocol="tgi", template="chatml"), "entry: protocol must be openai"),
        (_set("migrate.environment.ARENA_MODELS", lambda m: json.dumps(
            [*json.loads(m), {"name": "q", "url": "http://vllm:8000/v1", "protocol": "openai"}])),
         "migrate: its ARENA_MODELS must not list vLLM's model"),
    ],
)
def test_each_vllm_check_can_fail(compose, env, mutate, expected):
    broken = copy.deepcopy(compose)
    mutate(broken)
    problems = vllm_problems(broken, env)
    assert any(expected in p for p in problems), problems


def test_hosted_api_keys_reach_web_and_worker_by_name_only(env):
    keyed = {**env, **{name: "sk-" + secrets.token_urlsafe(32) for name in MODEL_KEYS}}
    raw = compose_raw()["services"]
    for name, service in compose_resolved(keyed)["services"].items():
        got = container_env(service, keyed)
        for key in MODEL_KEYS:
            if name in KEYED_SERVICES:
                assert got.get(key) == keyed[key], f"{name} makes model requests: it needs {key}"
                assert raw[name]["environment"][key] is None, f"{name}.{key} is passed through from .env, never set"
            else:
                assert key not in got, f"{name} calls no model server: it must not get {key}"
    # Without the key in .env, the containers get no such variable (not an empty one).
    keyless = {k: v for k, v in env.items() if k not in MODEL_KEYS}
    for name in KEYED_SERVICES:
        assert not set(MODEL_KEYS) & set(container_env(raw[name], keyless))
    assert not re.search(r"sk-[A-Za-z0-9_-]{16,}", compose_text()), "an API key is written in the file"


# --- Pins and secrets -----------------------------------------------------------------------


def test_every_image_is_pinned(services):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image!r} has no tag"
        assert tag != "latest" and not tag.startswith("latest"), f"{name}: {image!r}"
        assert re.match(r"v?\d+\.\d+", tag), f"{name}: {image!r} is not pinned to a version"
        if "build" in service:
            assert tag == version, f"{name}: the app image is tagged with the project version {version}"


def _environment_items(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "environment":
                items = value.items() if isinstance(value, dict) else (
                    [*i.split("=", 1), None][:2] for i in value
                )
                for name, val in items:
                    yield f"{path}.environment.{name}", name, val
            else:
                yield from _environment_items(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _environment_items(value, f"{path}[{i}]")


def test_no_secret_is_written_in_the_compose_file():
    raw = compose_raw()
    checked = 0
    for where, name, value in _environment_items(raw):
        if SECRET_NAME.search(name):
            checked += 1
            assert value is None or REFERENCE_ONLY.match(str(value)), f"{where} must come from .env, not {value!r}"
    assert checked >= 4
    for where, name, value in _environment_items(raw):
        if name.endswith("_URL") and value and "@" in str(value):
            credentials = re.match(r"^[a-z0-9+]+://[^:@/]*:(.*)@[^@]+$", str(value))
            assert credentials, f"{where}: the password must be a ${{VAR}} reference"
            assert REFERENCE_ONLY.match(credentials[1]), f"{where}: the password must be a ${{VAR}} reference"
    text = compose_text()
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", text), "a Hugging Face token is written in the file"
    assert "secrets" not in raw or all("file" in s or "environment" in s for s in raw["secrets"].values())


# --- .env.example ---------------------------------------------------------------------------


def _passthrough_names() -> set[str]:
    return {name for _, name, value in _environment_items(compose_raw()) if value is None}


def test_env_example_documents_every_variable_the_compose_file_reads():
    values, commented = env_example()
    documented = set(values) | commented
    needed = variables_referenced(compose_text()) | _passthrough_names()
    assert needed - documented == set(), "add these to .env.example"


def test_env_example_has_no_unused_variable_and_no_secret():
    values, commented = env_example()
    used = variables_referenced(compose_text()) | _passthrough_names() | COMPOSE_OWN_VARIABLES
    assert (set(values) | commented) - used == set(), "docker-compose.yml never reads these"
    for name, value in values.items():
        if SECRET_NAME.search(name):
            assert value == "", f"{name} must be left empty in .env.example (the operator fills it in)"


def test_every_setting_read_from_the_environment_reaches_the_app_containers():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", settings_source))
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= read
    # SECRET_KEY_FILE is the alternative to SECRET_KEY for secret stores; compose uses SECRET_KEY.
    not_for_compose = {"SECRET_KEY_FILE"}
    app_env = compose_raw()["services"]["web"]["environment"]
    missing = read - set(app_env) - not_for_compose
    assert missing == set(), (
        "config/settings.py reads these but the containers never get them: add `NAME:` to x-app-env "
        "in docker-compose.yml and document NAME in .env.example"
    )


def test_env_example_enables_only_profiles_the_compose_file_has():
    lines = re.findall(r"^#?\s*COMPOSE_PROFILES=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert lines, "document COMPOSE_PROFILES (how to enable the vllm profile)"
    profiles = {p for s in compose_raw()["services"].values() for p in s.get("profiles") or []}
    assert VLLM_PROFILE in profiles
    for value in lines:
        assert set(value.split(",")) <= profiles, value
