"""Reading deploy/kubernetes the way `kubectl apply -k` would, without kubectl or kustomize.

`render(directory)` builds a kustomization: the documents of every file (or kustomization
directory) in its `resources`, then its `namespace` and `images` transformers. Those are the only
fields the layout uses; any other (patches, generators, ...) is refused rather than ignored, so
what is checked is what kustomize would apply.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .stack import ROOT

KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
OVERLAYS = KUBE / "overlays"
SECRET_EXAMPLE = KUBE / "secret.example.yaml"
LAYOUTS = {"base": BASE, **{f"overlays/{d.name}": d for d in sorted(OVERLAYS.iterdir()) if d.is_dir()}}

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "IngressClass", "PriorityClass",
                  "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


class KustomizeError(ValueError):
    pass


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def render(directory: Path, files: set[Path] | None = None) -> list[dict]:
    """The resources `kubectl apply -k directory` applies; `files` collects the files read."""
    spec = kustomization(directory)
    if unsupported := set(spec) - KUSTOMIZATION_FIELDS:
        raise KustomizeError(f"{directory}: fields this renderer does not implement: {sorted(unsupported)}")
    resources: list[dict] = []
    for entry in spec.get("resources") or []:
        path = (directory / entry).resolve()
        if path.is_dir():
            resources += render(path, files)
        elif path.is_file():
            resources += documents(path)
            if files is not None:
                files.add(path)
        else:
            raise KustomizeError(f"{directory}: no such resource {entry}")
    _namespace_set(resources, spec.get("namespace"))
    _images_set(resources, spec.get("images") or [])
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        key = (resource["kind"], resource["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)
    return resources


def _namespace_set(resources: list[dict], namespace: str | None) -> None:
    """kustomize's namespace transformer: a Namespace object is renamed, namespaced objects moved."""
    if not namespace:
        return
    for resource in resources:
        if resource["kind"] == "Namespace":
            resource["metadata"]["name"] = namespace
        elif resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = namespace


def _images_set(resources: list[dict], images: list[dict]) -> None:
    """kustomize's images transformer: a container image named `name` gets newName and newTag."""
    for image in images:
        for container in all_containers(resources):
            name, tag = image_split(container["image"])
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def image_split(image: str) -> tuple[str, str]:
    """('registry/repo', 'tag'); the tag is '' when there is none (a ':' in a registry port is not one)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, ""
    return name, tag


def pod_spec(resource: dict) -> dict | None:
    if resource["kind"] in WORKLOADS:
        return resource["spec"]["template"]["spec"]
    return None


def containers(resource: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(resource) or {}
    return [*(spec.get("initContainers") or [] if init else []), *(spec.get("containers") or [])]


def all_containers(resources: list[dict]) -> list[dict]:
    return [c for r in resources for c in containers(r)]


def pod_labels(resource: dict) -> dict:
    return resource["spec"]["template"]["metadata"].get("labels") or {}


def find(resources: list[dict], kind: str, name: str) -> dict | None:
    return next((r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name), None)


def source_comments(path: Path, name: str) -> set[str]:
    """Names in `# NAME: value` comment lines of the document defining `name` in `path`: the
    optional settings a ConfigMap or Secret offers, commented out like .env.example's."""
    for text in re.split(r"^---\s*$", path.read_text(), flags=re.M):
        document = yaml.safe_load(text)
        if document and document["metadata"]["name"] == name:
            return set(re.findall(r"^\s*#\s*([A-Z][A-Z0-9_]*):\s", text, flags=re.M))
    raise KeyError(f"{path}: no document named {name}")


def source_file(kind: str, name: str) -> Path:
    """The file under deploy/kubernetes that defines the object."""
    for path in sorted(KUBE.rglob("*.yaml")):
        if path.name != "kustomization.yaml" and any(
            d.get("kind") == kind and d["metadata"]["name"] == name for d in documents(path)
        ):
            return path
    raise KeyError(f"no file defines {kind} {name}")
