"""deploy/kubernetes, checked without a cluster: the Kubernetes API schemas, and the invariants the
arena needs (GPUs, probes, pins, secrets, one beat, the same environment as docker-compose.yml)."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from arena.management.commands.models_sync import entries_parse

from .kube import (
    BASE,
    KUBE,
    LAYOUTS,
    SECRET_EXAMPLE,
    KustomizeError,
    containers,
    documents,
    find,
    image_split,
    kustomization,
    pod_labels,
    pod_spec,
    render,
    source_comments,
    source_file,
)
from .stack import ROOT, command_argv, compose_raw

# The Kubernetes version the manifests are validated against (kubernetes-validate's offline schemas).
KUBERNETES_VERSION = "1.33"
APP_NAME = "arena"  # app.kubernetes.io/name of the application tiers' pods
TIERS = {"web": "arena-web", "worker": "arena-worker", "beat": "arena-beat", "migrate": "arena-migrate"}
# Variables whose values are secrets (the URLs carry the data stores' passwords).
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|^(DATABASE|REDIS|CELERY_BROKER|CHANNEL_LAYER)_URL$")
GPU = "nvidia.com/gpu"
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference"
VLLM_IMAGE = "vllm/vllm-openai"
MIN_STARTUP_SECONDS = 600  # weights take minutes to download on the first start
MIN_WEBSOCKET_TIMEOUT = 3600


@pytest.fixture(scope="module")
def layouts() -> dict[str, list[dict]]:
    return {name: render(directory) for name, directory in LAYOUTS.items()}


@pytest.fixture(scope="module")
def base(layouts) -> list[dict]:
    return layouts["base"]


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def schema_errors(resource: dict) -> list[str]:
    where = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'.'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{where}: {e.message}"]
    return []


# --- The Kubernetes API schemas -------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_manifest_validates_against_the_kubernetes_api(layouts, layout):
    # validate() silently falls back to an older version's schemas: make sure the stated one ships.
    assert f"{KUBERNETES_VERSION}.0" in kubernetes_validate.utils.all_versions()
    assert [e for r in layouts[layout] for e in schema_errors(r)] == []


def test_the_example_secrets_validate_too():
    assert [e for r in documents(SECRET_EXAMPLE) for e in schema_errors(r)] == []


def test_the_schema_check_catches_mistakes(base):
    web = copy.deepcopy(find(base, "Deployment", "arena-web"))
    web["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    assert any("readynessProbe" in e for e in schema_errors(web))
    hpa = copy.deepcopy(find(base, "HorizontalPodAutoscaler", "arena-worker"))
    hpa["spec"]["maxReplicas"] = "many"
    assert any("maxReplicas" in e for e in schema_errors(hpa))
    assert schema_errors({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_the_version_stated_is_the_one_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert f"Kubernetes {KUBERNETES_VERSION}" in readme


# --- The kustomize layout -------------------------------------------------------------------


def test_every_manifest_file_belongs_to_a_layout():
    files: set = set()
    for directory in LAYOUTS.values():
        render(directory, files)
    on_disk = {p.resolve() for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk - files == {SECRET_EXAMPLE.resolve()}, "a manifest no kustomization lists"


def test_the_trial_overlay_adds_postgres_and_redis_to_the_base(layouts):
    base_names = {(r["kind"], r["metadata"]["name"]) for r in layouts["base"]}
    trial = layouts["overlays/trial"]
    added = {(r["kind"], r["metadata"]["name"]) for r in trial} - base_names
    assert added == {("StatefulSet", "postgres"), ("Service", "postgres"), ("StatefulSet", "redis"),
                     ("Service", "redis")}
    services = compose_raw()["services"]
    for name, port in (("postgres", 5432), ("redis", 6379)):
        (container,) = containers(find(trial, "StatefulSet", name))
        assert container["image"] == services[name]["image"], f"{name}: the image compose runs"
        assert find(trial, "Service", name)["spec"]["ports"][0]["port"] == port
    example = yaml.safe_load_all(SECRET_EXAMPLE.read_text())
    assert "postgres://arena:<password>@postgres:5432/arena" in SECRET_EXAMPLE.read_text()
    assert any(d["metadata"]["name"] == "arena-postgres" for d in example)


def test_every_resource_is_in_the_arena_namespace(layouts):
    for resources in layouts.values():
        for r in resources:
            if r["kind"] != "Namespace":
                assert r["metadata"].get("namespace") == "arena", r["metadata"]["name"]


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\npatches:\n  - path: p.yaml\n")
    with pytest.raises(KustomizeError, match="patches"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError, match=r"missing\.yaml"):
        render(tmp_path)


# --- Invariants -----------------------------------------------------------------------------


def _by_component(resources: list[dict], component: str) -> list[dict]:
    return [r for r in resources if pod_spec(r) is not None
            and pod_labels(r).get("app.kubernetes.io/component") == component]


def _port_number(container: dict, port) -> int | None:
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port), None)


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def model_server_problems(resources: list[dict]) -> list[str]:
    servers = _by_component(resources, "model-server")
    problems = [] if servers else ["no model server Deployments"]
    for server in servers:
        name, spec = server["metadata"]["name"], pod_spec(server)
        (container,) = spec["containers"]
        limits = (container.get("resources") or {}).get("limits") or {}
        if int(limits.get(GPU, 0)) < 1:
            problems.append(f"{name}: no {GPU} limit")
        tolerations = spec.get("tolerations") or []
        if not any(t.get("key") == GPU and t.get("operator") in ("Exists", "Equal") for t in tolerations):
            problems.append(f"{name}: no toleration for {GPU}")
        problems += _probe_problems(name, container)
        claims = {v["name"] for v in spec.get("volumes") or [] if "persistentVolumeClaim" in v}
        if not any(m["name"] in claims for m in container.get("volumeMounts") or []):
            problems.append(f"{name}: the weights need a PersistentVolumeClaim")
        if server["kind"] == "Deployment" and server["spec"].get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{name}: strategy must be Recreate (one GPU, one ReadWriteOnce volume)")
    return problems


def _probe_problems(name: str, container: dict) -> list[str]:
    problems = []
    for kind in ("readinessProbe", "startupProbe"):
        get = (container.get(kind) or {}).get("httpGet") or {}
        port = _port_number(container, get.get("port"))
        if get.get("path") != "/health" or port is None:
            problems.append(f"{name}: {kind} must GET /health on the container's port")
    startup = container.get("startupProbe") or {}
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    if budget < MIN_STARTUP_SECONDS:
        problems.append(f"{name}: startupProbe allows {budget} s, the first start takes minutes")
    return problems


def image_problems(resources: list[dict]) -> list[str]:
    problems, app_images = [], set()
    for resource in resources:
        for container in containers(resource):
            where = f"{resource['metadata']['name']}/{container['name']}"
            _, tag = image_split(container["image"])
            if not tag or tag.startswith("latest") or not re.match(r"v?\d+\.\d+", tag):
                problems.append(f"{where}: {container['image']!r} is not pinned to a version")
            if pod_labels(resource).get("app.kubernetes.io/name") == APP_NAME:
                app_images.add(container["image"])
    if len(app_images) != 1:
        problems.append(f"the app tiers must run one image, not {sorted(app_images)}")
    services = compose_raw()["services"]
    expected = {"tgi": services["tgi-zephyr"]["image"], "vllm": services["vllm"]["image"]}
    for server in _by_component(resources, "model-server"):
        image = pod_spec(server)["containers"][0]["image"]
        kind = "vllm" if image.startswith(VLLM_IMAGE + ":") else "tgi"
        if image != expected[kind]:
            problems.append(f"{server['metadata']['name']}: {image} is not compose's {expected[kind]}")
    return problems


def _env_entries(resources: list[dict]):
    for resource in resources:
        for container in containers(resource):
            for entry in container.get("env") or []:
                yield f"{resource['metadata']['name']}/{container['name']}", entry


def secret_problems(resources: list[dict]) -> list[str]:
    problems = [f"{where}: {e['name']} is written in the manifest; take it from a Secret"
                for where, e in _env_entries(resources) if SECRET_NAME.search(e["name"]) and "value" in e]
    problems += [f"Secret/{r['metadata']['name']} is in a layout; Secrets are created by the operator"
                 for r in resources if r["kind"] == "Secret"]
    for r in resources:
        if r["kind"] == "ConfigMap":
            for key, value in (r.get("data") or {}).items():
                if SECRET_NAME.search(key) or re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)):
                    problems.append(f"ConfigMap/{r['metadata']['name']}: {key} looks like a secret")
    return problems


def beat_problems(resources: list[dict]) -> list[str]:
    beats = _by_component(resources, "beat")
    if len(beats) != 1:
        return [f"exactly one beat Deployment, not {len(beats)}"]
    (beat,) = beats
    problems = []
    if beat["spec"].get("replicas") != 1:
        problems.append("beat: replicas must be 1")
    if beat["spec"].get("strategy", {}).get("type") != "Recreate":
        problems.append("beat: strategy must be Recreate, or a rollout runs two beats")
    if any(r["kind"] == "HorizontalPodAutoscaler" and r["spec"]["scaleTargetRef"]["name"] == beat["metadata"]["name"]
           for r in resources):
        problems.append("beat: must not be autoscaled")
    (container,) = pod_spec(beat)["containers"]
    schedule = _flag(command_argv(container.get("args") or container.get("command")), "--schedule") or ""
    empty_dirs = {v["name"] for v in pod_spec(beat).get("volumes") or [] if "emptyDir" in v}
    if not any(schedule.startswith(m["mountPath"] + "/") and m["name"] in empty_dirs
               for m in container.get("volumeMounts") or []):
        problems.append(f"beat: its schedule {schedule!r} must be on a mounted emptyDir (read-only root)")
    return problems


def worker_problems(resources: list[dict]) -> list[str]:
    problems = []
    worker = find(resources, "Deployment", TIERS["worker"])
    if worker is None:
        return ["no worker Deployment"]
    argv = command_argv(pod_spec(worker)["containers"][0]["args"])
    compose_argv = command_argv(compose_raw()["services"]["worker"]["command"])
    if argv[:4] != ["celery", "-A", "config", "worker"] or _flag(argv, "--pool") != "threads":
        problems.append("worker: must run Celery's thread pool")
    if _flag(argv, "--concurrency") != _flag(compose_argv, "--concurrency").split(":-")[1].rstrip("}"):
        problems.append("worker: --concurrency must be compose's default")
    hpas = [r for r in resources if r["kind"] == "HorizontalPodAutoscaler"]
    targets = {(h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"]) for h in hpas}
    if ("Deployment", TIERS["worker"]) not in targets:
        problems.append("worker: no HorizontalPodAutoscaler targets the worker Deployment")
    for hpa in hpas:
        kind, name = hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]
        if find(resources, kind, name) is None:
            problems.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: no {kind} {name}")
        if not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics") or []):
            problems.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: must scale on CPU")
    if "replicas" in worker["spec"]:
        problems.append("worker: replicas belongs to the autoscaler (every apply would reset it)")
    return problems


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def wiring_problems(resources: list[dict]) -> list[str]:
    problems = []
    workloads = [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]
    for pdb_tier in ("web", "worker"):
        pdbs = [r for r in resources if r["kind"] == "PodDisruptionBudget"]
        deployment = find(resources, "Deployment", TIERS[pdb_tier])
        if deployment is None or not any(_selects(p["spec"]["selector"]["matchLabels"], pod_labels(deployment))
                                         for p in pdbs):
            problems.append(f"{pdb_tier}: no PodDisruptionBudget selects its pods")
    for service in (r for r in resources if r["kind"] == "Service"):
        selected = [w for w in workloads if _selects(service["spec"].get("selector") or {}, pod_labels(w))]
        name = service["metadata"]["name"]
        if len(selected) != 1:
            problems.append(f"Service/{name}: selects {len(selected)} workloads")
            continue
        (container, *_) = pod_spec(selected[0])["containers"]
        problems += [f"Service/{name}: targetPort {p['targetPort']} is no container port"
                     for p in service["spec"]["ports"] if _port_number(container, p["targetPort"]) is None]
    return problems


def web_problems(resources: list[dict]) -> list[str]:
    web = find(resources, "Deployment", TIERS["web"])
    if web is None:
        return ["no web Deployment"]
    problems = []
    (container,) = pod_spec(web)["containers"]
    readiness = (container.get("readinessProbe") or {}).get("exec", {}).get("command")
    if readiness != ["python", "/app/docker/healthcheck.py"]:
        problems.append("web: readinessProbe must be docker/healthcheck.py (/healthz with an allowed Host)")
    argv = command_argv(container["args"])
    compose_argv = command_argv(compose_raw()["services"]["web"]["command"])
    same = [a.replace("$(TRUSTED_PROXIES)", "${TRUSTED_PROXIES:-}") for a in argv]
    if same != compose_argv:
        problems.append(f"web: must run uvicorn as compose does, not {argv}")
    ingresses = [r for r in resources if r["kind"] == "Ingress"]
    backends = {p["backend"]["service"]["name"] for i in ingresses for rule in i["spec"]["rules"]
                for p in rule["http"]["paths"]}
    if backends != {TIERS["web"]}:
        problems.append(f"Ingress: must route to the web Service, not {sorted(backends)}")
    problems.extend(
        f"Ingress: {key} must keep websockets open for {MIN_WEBSOCKET_TIMEOUT} s"
        for ingress in ingresses
        for key in ("proxy-read-timeout", "proxy-send-timeout")
        if int((ingress["metadata"].get("annotations") or {}).get(f"nginx.ingress.kubernetes.io/{key}", 60))
        < MIN_WEBSOCKET_TIMEOUT
    )
    return problems


def security_problems(resources: list[dict]) -> list[str]:
    problems = []
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        name = resource["metadata"]["name"]
        if (spec.get("securityContext") or {}).get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        app = pod_labels(resource).get("app.kubernetes.io/name") == APP_NAME
        for container in containers(resource):
            where, context = f"{name}/{container['name']}", container.get("securityContext") or {}
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if app and context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: the app image runs with a read-only root filesystem")
            resources_ = container.get("resources") or {}
            if not {"cpu", "memory"} <= set(resources_.get("requests") or {}) or "memory" not in (
                resources_.get("limits") or {}
            ):
                problems.append(f"{where}: needs cpu and memory requests and a memory limit")
    return problems


def models_problems(resources: list[dict]) -> list[str]:
    """arena-models' entries against the model servers' Services and flags."""
    config = find(resources, "ConfigMap", "arena-models")
    if config is None:
        return ["no arena-models ConfigMap"]
    entries = entries_parse(config["data"]["ARENA_MODELS"], "arena-models")  # the command's own validation
    problems, served = [], set()
    for entry in entries:
        url = urlsplit(entry["endpoint_url"])
        service = find(resources, "Service", url.hostname or "")
        if service is None or url.port not in {p["port"] for p in service["spec"]["ports"]}:
            problems.append(f"{entry['name']}: {url.geturl()} is no Service port")
            continue
        server = next((r for r in resources if r["kind"] == "Deployment"
                       and _selects(service["spec"].get("selector") or {}, pod_labels(r))), None)
        if server is None:
            problems.append(f"{entry['name']}: Service/{service['metadata']['name']} selects no Deployment")
            continue
        served.add(server["metadata"]["name"])
        argv = command_argv(pod_spec(server)["containers"][0].get("args") or [])
        if entry.get("protocol") == "openai":
            problems += _openai_entry_problems(entry, url, argv)
        elif not pod_spec(server)["containers"][0]["image"].startswith(TGI_IMAGE + ":"):
            problems.append(f"{entry['name']}: a tgi entry must point at a TGI server")
    servers = {r["metadata"]["name"] for r in _by_component(resources, "model-server")}
    if served != servers:
        problems.append(f"model servers without an arena-models entry: {sorted(servers - served)}")
    return problems


def _openai_entry_problems(entry: dict, url, argv: list[str]) -> list[str]:
    problems = []
    name = _flag(argv, "--served-model-name")
    if not name or entry.get("served_model") != name or entry["name"] != name:
        problems.append(f"{entry['name']}: name and served_model must be vLLM's --served-model-name {name!r}")
    if url.path != "/v1":
        problems.append(f"{entry['name']}: url must end in /v1 (the OpenAI client's base URL)")
    if (seqs := _flag(argv, "--max-num-seqs")) and entry.get("max_concurrent") != int(seqs):
        problems.append(f"{entry['name']}: max_concurrent must be --max-num-seqs {seqs}")
    return problems


def migrate_problems(resources: list[dict]) -> list[str]:
    job = find(resources, "Job", TIERS["migrate"])
    if job is None:
        return ["no migrate Job"]
    (container,) = pod_spec(job)["containers"]
    script = " ".join(command_argv(container.get("command") or []) + command_argv(container.get("args") or []))
    problems = []
    if not ("manage.py migrate" in script and "&&" in script and
            script.index("manage.py migrate") < script.index("manage.py models_sync")):
        problems.append("migrate: must run migrate, then (&&) models_sync")
    models = [e for e in container.get("env") or [] if e["name"] == "ARENA_MODELS"]
    ref = models[0].get("valueFrom", {}).get("configMapKeyRef", {}) if models else {}
    if ref.get("name") != "arena-models" or ref.get("key") != "ARENA_MODELS":
        problems.append("migrate: ARENA_MODELS must come from the arena-models ConfigMap")
    return problems


CHECKS: list[Callable[[list[dict]], list[str]]] = [
    model_server_problems, image_problems, secret_problems, beat_problems, worker_problems,
    wiring_problems, web_problems, security_problems, models_problems, migrate_problems,
]


def problems(resources: list[dict]) -> list[str]:
    return [p for check in CHECKS for p in check(resources)]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_layouts_keep_every_invariant(layouts, layout):
    assert problems(layouts[layout]) == []


def test_the_app_image_is_the_project_version_from_one_place(base):
    (image,) = kustomization(BASE)["images"]
    assert image["name"] == "arena" and image["newTag"] == project_version()
    raw = [c["image"] for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml"
           for r in documents(path) for c in containers(r) if pod_labels(r).get("app.kubernetes.io/name") == APP_NAME]
    assert raw and set(raw) == {f"arena:{project_version()}"}, "manifests name the image as the images entry does"


# --- Each check can fail ---------------------------------------------------------------------


def _pod(kind: str, name: str, mutate: Callable[[dict], None]):
    def apply(resources: list[dict]) -> None:
        mutate(pod_spec(find(resources, kind, name)))
    return apply


def _container(kind: str, name: str, mutate: Callable[[dict], None], index: int = 0):
    return _pod(kind, name, lambda spec: mutate(spec["containers"][index]))


def _resource(kind: str, name: str, mutate: Callable[[dict], None]):
    return lambda resources: mutate(find(resources, kind, name))


def _models(mutate: Callable[[list[dict]], None]):
    def apply(config: dict) -> None:
        entries = json.loads(config["data"]["ARENA_MODELS"])
        mutate(entries)
        config["data"]["ARENA_MODELS"] = json.dumps(entries)
    return _resource("ConfigMap", "arena-models", apply)


def _argv_set(flag: str, value: str):
    def mutate(container: dict) -> None:
        container["args"][container["args"].index(flag) + 1] = value
    return mutate


def _set(key: str, value):
    return lambda node: node.__setitem__(key, value)


def _drop(key: str):
    return lambda node: node.pop(key, None)


def _add_secret_value(container: dict) -> None:
    container.setdefault("env", []).append({"name": "OPENAI_API_KEY", "value": "sk-written-here"})


MUTATIONS = [
    (_container("Deployment", "tgi-zephyr", lambda c: c["resources"]["limits"].pop(GPU)),
     "tgi-zephyr: no nvidia.com/gpu limit"),
    (_pod("Deployment", "vllm", _drop("tolerations")), "vllm: no toleration for nvidia.com/gpu"),
    (_container("Deployment", "vllm", _drop("readinessProbe")), "vllm: readinessProbe must GET /health"),
    (_container("Deployment", "tgi-zephyr", lambda c: c["startupProbe"].update(failureThreshold=10)),
     "tgi-zephyr: startupProbe allows 100 s"),
    (_container("Deployment", "tgi-zephyr", lambda c: c["startupProbe"]["httpGet"].update(port="metrics")),
     "tgi-zephyr: startupProbe must GET /health"),
    (_pod("Deployment", "vllm", lambda s: s["volumes"].__setitem__(0, {"name": "data", "emptyDir": {}})),
     "vllm: the weights need a PersistentVolumeClaim"),
    (_container("Deployment", "vllm", _set("image", "vllm/vllm-openai:latest")), "is not pinned to a version"),
    (_container("Deployment", "tgi-zephyr", _set("image", TGI_IMAGE)), "is not pinned to a version"),
    (_container("Deployment", "tgi-zephyr", _set("image", TGI_IMAGE + ":3.3.6")), "is not compose's"),
    (_container("Deployment", "arena-beat", _set("image", "registry.example.com/arena:0.0.9")),
     "the app tiers must run one image"),
    (_container("Deployment", "arena-web", _add_secret_value), "OPENAI_API_KEY is written in the manifest"),
    (lambda rs: rs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"A": "b"}}),
     "Secret/s is in a layout"),
    (_resource("ConfigMap", "arena-config", lambda c: c["data"].update(DATABASE_URL="postgres://a:b@db/arena")),
     "DATABASE_URL looks like a secret"),
    (_resource("Deployment", "arena-beat", lambda d: d["spec"].update(replicas=2)), "beat: replicas must be 1"),
    (_resource("Deployment", "arena-beat", lambda d: d["spec"].update(strategy={"type": "RollingUpdate"})),
     "beat: strategy must be Recreate"),
    (_pod("Deployment", "arena-beat", lambda s: s.update(volumes=[])), "must be on a mounted emptyDir"),
    (lambda rs: rs.append(copy.deepcopy(find(rs, "Deployment", "arena-beat"))), "exactly one beat Deployment, not 2"),
    (_resource("HorizontalPodAutoscaler", "arena-worker", lambda h: h["spec"]["scaleTargetRef"].update(name="worker")),
     "no HorizontalPodAutoscaler targets the worker Deployment"),
    (_resource("HorizontalPodAutoscaler", "arena-worker", lambda h: h["spec"]["metrics"][0]["resource"].update(
        name="memory")), "must scale on CPU"),
    (_resource("Deployment", "arena-worker", lambda d: d["spec"].update(replicas=3)),
     "replicas belongs to the autoscaler"),
    (_container("Deployment", "arena-worker", _argv_set("--pool", "prefork")), "worker: must run Celery's thread pool"),
    (_container("Deployment", "arena-worker", _argv_set("--concurrency", "8")), "--concurrency must be compose's"),
    (_resource("PodDisruptionBudget", "arena-worker", lambda p: p["spec"]["selector"]["matchLabels"].update(
        {"app.kubernetes.io/component": "wrker"})), "worker: no PodDisruptionBudget"),
    (_resource("Service", "arena-web", lambda s: s["spec"]["ports"][0].update(targetPort="web")),
     "Service/arena-web: targetPort web is no container port"),
    (_resource("Service", "vllm", lambda s: s["spec"].update(selector={"app": "nothing"})), "Service/vllm: selects 0"),
    (_container("Deployment", "arena-web", _drop("readinessProbe")), "web: readinessProbe must be"),
    (_container("Deployment", "arena-web", lambda c: c["args"].remove("--proxy-headers")), "web: must run uvicorn"),
    (_resource("Ingress", "arena-web", lambda i: i["metadata"]["annotations"].pop(
        "nginx.ingress.kubernetes.io/proxy-read-timeout")), "proxy-read-timeout must keep websockets open"),
    (_pod("Deployment", "vllm", lambda s: s["securityContext"].pop("runAsNonRoot")), "vllm: runAsNonRoot must be true"),
    (_container("Deployment", "arena-worker", lambda c: c["securityContext"].update(readOnlyRootFilesystem=False)),
     "arena-worker/worker: the app image runs with a read-only root filesystem"),
    (_pod("Deployment", "arena-web", lambda s: s["initContainers"][0].pop("resources")),
     "arena-web/wait-for-migrations: needs cpu and memory requests"),
    (_container("Deployment", "vllm", _argv_set("--served-model-name", "qwen")),
     "name and served_model must be vLLM's --served-model-name 'qwen'"),
    (_container("Deployment", "vllm", _argv_set("--max-num-seqs", "256")), "max_concurrent must be --max-num-seqs 256"),
    (_models(lambda es: es[1].update(url="http://vllm:8000")), "url must end in /v1"),
    (_models(lambda es: es[1].update(url="http://vllm:80/v1")), "is no Service port"),
    (_models(lambda es: es.pop(0)), "model servers without an arena-models entry: ['tgi-zephyr']"),
    (_models(lambda es: es[0].update(url="http://vllm:8000/v1")), "a tgi entry must point at a TGI server"),
    (_container("Job", "arena-migrate", _set("command", ["python", "manage.py", "models_sync"])),
     "migrate: must run migrate, then (&&) models_sync"),
    (_container("Job", "arena-migrate", _drop("env")), "migrate: ARENA_MODELS must come from the arena-models"),
]


@pytest.mark.parametrize("mutate, expected", MUTATIONS, ids=[m[1][:40] for m in MUTATIONS])
def test_each_check_can_fail(base, mutate, expected):
    broken = copy.deepcopy(base)
    mutate(broken)
    found = problems(broken)
    assert any(expected in p for p in found), found


# --- The same environment as docker-compose.yml, tier by tier --------------------------------


def compose_tier_env(tier: str) -> tuple[set[str], set[str]]:
    """(names compose always sets, names it passes through only when .env sets them)."""
    environment = compose_raw()["services"][tier].get("environment") or {}
    if tier == "beat":  # beat takes the shared x-app-env from the x-app anchor
        environment = compose_raw()["x-app-env"]
    return {n for n, v in environment.items() if v is not None}, {n for n, v in environment.items() if v is None}


def _secret_keys(name: str) -> tuple[set[str], set[str]]:
    (document,) = (d for d in documents(SECRET_EXAMPLE) if d["metadata"]["name"] == name)
    return set(document.get("stringData") or {}), source_comments(SECRET_EXAMPLE, name)


def kube_container_env(resources: list[dict], container: dict) -> tuple[set[str], set[str]]:
    """(names the container always gets, names it gets once set in its ConfigMaps or Secrets)."""
    always = {e["name"] for e in container.get("env") or []}
    offered: set[str] = set()
    for source in container.get("envFrom") or []:
        if ref := source.get("configMapRef"):
            config = find(resources, "ConfigMap", ref["name"])
            always |= set(config.get("data") or {})
            offered |= source_comments(source_file("ConfigMap", ref["name"]), ref["name"])
        elif ref := source.get("secretRef"):
            keys, commented = _secret_keys(ref["name"])
            (offered if ref.get("optional") else always).update(keys)
            offered |= commented
    return always, offered


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_each_tier_gets_the_environment_compose_gives_it(base, tier):
    workload = find(base, "Job" if tier == "migrate" else "Deployment", TIERS[tier])
    containers = pod_spec(workload)["containers"]
    # The first is the tier's own (a worker pod also runs its metrics sidecar, checked below).
    always, offered = kube_container_env(base, containers[0])
    compose_always, compose_optional = compose_tier_env(tier)
    assert always == compose_always
    assert offered == compose_optional


def test_the_init_containers_get_the_app_settings_and_no_model_keys(base):
    app_always, app_optional = compose_tier_env("beat")
    for tier in ("web", "worker", "beat"):
        for init in pod_spec(find(base, "Deployment", TIERS[tier])).get("initContainers") or []:
            assert kube_container_env(base, init) == (app_always, app_optional), f"{tier}/{init['name']}"


def test_the_example_secrets_hold_placeholders_only():
    for document in documents(SECRET_EXAMPLE):
        for key, value in (document.get("stringData") or {}).items():
            assert re.search(r"<[^<>]+>", value), f"{document['metadata']['name']}.{key}: a placeholder, not a value"
        assert "data" not in document
    referenced = {
        ref["name"]
        for resources in [render(d) for d in LAYOUTS.values()]
        for r in resources for c in containers(r)
        for ref in [*(s.get("secretRef") for s in c.get("envFrom") or []),
                    *(e.get("valueFrom", {}).get("secretKeyRef") for e in c.get("env") or [])] if ref
    }
    assert referenced == {d["metadata"]["name"] for d in documents(SECRET_EXAMPLE)}


def test_a_worker_pods_metrics_are_served_by_a_sidecar_reading_the_workers_files(base):
    worker = find(base, "Deployment", TIERS["worker"])
    spec = pod_spec(worker)
    names = [c["name"] for c in spec["containers"]]
    assert names == ["worker", "metrics"]
    main, sidecar = spec["containers"]
    assert sidecar["args"][:3] == ["python", "manage.py", "metrics_serve"]
    assert sidecar["image"] == main["image"]
    mounts = lambda c: {(m["name"], m["mountPath"]) for m in c.get("volumeMounts", [])}  # noqa: E731
    assert ("tmp", "/tmp") in mounts(main) & mounts(sidecar)  # ARENA_METRICS_DIR is under /tmp
    port = sidecar["ports"][0]["containerPort"]
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
    assert "arena-model-keys" not in str(sidecar.get("envFrom"))  # it calls no model server
