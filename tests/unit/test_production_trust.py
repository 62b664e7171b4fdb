"""The production manifests close Temporal, Kafka and the databases to everyone but the
services (issue 13; docs/production-trust.md), checked offline on what kustomize renders:

* every workload namespace denies all traffic by default, and the policies open Kafka,
  the Temporal frontend and each store to the service pods that need them only (a small
  evaluator of NetworkPolicy semantics, run over every agency and the platform);
* the Temporal UI is read-only and behind single sign-on, its codec endpoint the agency API;
* key custody: each agency's processes mount the key Secrets of its served regions and no
  other, the signed registry and the operator's public key; the local demo is never on;
* the Temporal (mTLS + token) and Kafka (SASL_SSL) client settings are present and parse
  as the services' Settings; the Kafka ACLs of kafka/acls.sh are exactly the table;
* the Temporal server values require client certificates and tokens;
* every kustomization renders and validates against the Kubernetes schemas.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from contracts.topics import Topics
from services.audit.config import AuditSettings
from services.common.config import Settings
from tests.unit.test_production_manifests import (
    ANNOUNCED_SETTINGS,
    K8S_VERSIONS,
    PRODUCTION,
    REPO_DIR,
    kustomize_bin,
    load_all,
    schema_errors,
    schemas_read_once,  # noqa: F401 (autouse: the schemas are read once here too)
)

pytestmark = pytest.mark.unit

KUBERNETES = PRODUCTION / "kubernetes"
KUSTOMIZATIONS = sorted(p.parent for p in KUBERNETES.rglob("kustomization.yaml"))
AGENCIES = sorted(p.parent for p in (KUBERNETES / "agencies").glob("*/kustomization.yaml"))
TEMPORAL_VALUES = PRODUCTION / "temporal-values.yaml"
ACLS_SCRIPT = PRODUCTION / "kafka" / "acls.sh"
TRUST_DOC = REPO_DIR / "docs" / "production-trust.md"
# Namespaces of the cluster's own services: the policies name them as peers, they are not ours.
CLUSTER_SERVICES = {"kube-system", "ingress-nginx", "monitoring"}
PLATFORM_NAMESPACES = {"temporal", "kafka", "medtransfer-data"}
SIDES = ("incoming", "outgoing")
# Every write action the pinned UI (temporalio/ui 2.49.1, server/config/docker.yaml) can
# switch off one by one, besides TEMPORAL_DISABLE_WRITE_ACTIONS.
UI_WRITE_SWITCHES = {
    "TEMPORAL_WORKFLOW_TERMINATE_DISABLED",
    "TEMPORAL_WORKFLOW_CANCEL_DISABLED",
    "TEMPORAL_WORKFLOW_SIGNAL_DISABLED",
    "TEMPORAL_WORKFLOW_UPDATE_DISABLED",
    "TEMPORAL_WORKFLOW_RESET_DISABLED",
    "TEMPORAL_WORKFLOW_PAUSE_DISABLED",
    "TEMPORAL_BATCH_ACTIONS_DISABLED",
    "TEMPORAL_START_WORKFLOW_DISABLED",
    "TEMPORAL_ACTIVITY_COMMANDS_DISABLED",
}
KAFKA_PORT, TEMPORAL_PORT, INTERNAL_FRONTEND_PORT, HISTORY_PORT, STORE_PORT = (
    9093,
    7233,
    7236,
    7234,
    5432,
)
KEY_SECRET = re.compile(r"^medtransfer-keys-(\d{6})$")


# ---------------------------------------------------------------- rendering


@functools.cache
def render(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [str(kustomize_bin()), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{directory}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def everything() -> list[dict[str, Any]]:
    return [doc for directory in KUSTOMIZATIONS for doc in render(directory)]


def of_kind(docs: Any, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: Any, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def ids(directory: Path) -> str:
    return str(directory.relative_to(KUBERNETES))


@dataclass(frozen=True)
class SecretKey:
    """An environment variable whose value comes from a Secret."""

    secret: str
    key: str


def expand(value: str, env: Mapping[str, object]) -> str:
    """The kubelet's $(VAR) expansion: earlier variables (envFrom included) are replaced,
    $$ is a literal $, anything else stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        found = env.get(name)
        return found if isinstance(found, str) else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)


def container_env(docs: Any, container: dict[str, Any]) -> dict[str, str | SecretKey]:
    """What the container's process sees: envFrom ConfigMaps, then env in order."""
    env: dict[str, str | SecretKey] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "settings from ConfigMaps; secrets by name below"
        env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = SecretKey(ref["name"], ref["key"])
    return env


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def mounted_file(
    deployment: dict[str, Any], container: dict[str, Any], path: str
) -> dict[str, Any]:
    """The volume that holds ``path``, which must be a read-only, whole-directory mount of a
    Secret or ConfigMap (no subPath: renewals reach the process)."""
    volumes = {v["name"]: v for v in pod_of(deployment).get("volumes", [])}
    holders = [
        m
        for m in container.get("volumeMounts", [])
        if PurePosixPath(path).parent == PurePosixPath(m["mountPath"])
    ]
    assert len(holders) == 1, f"{deployment['metadata']['name']}: nothing mounts {path}"
    (mount,) = holders
    assert mount.get("readOnly") is True, path
    assert "subPath" not in mount, path
    volume = volumes[mount["name"]]
    assert "items" not in volume.get("secret", volume.get("configMap", {})), path
    return volume


@dataclass(frozen=True)
class Agency:
    directory: Path
    docs: tuple[dict[str, Any], ...]

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def namespace(self) -> dict[str, Any]:
        (namespace,) = of_kind(self.docs, "Namespace")
        return namespace

    @property
    def config(self) -> dict[str, str]:
        data: dict[str, str] = named(self.docs, "ConfigMap", "medtransfer-config")["data"]
        return data | named(self.docs, "ConfigMap", "medtransfer-agency")["data"]

    @property
    def deployments(self) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in of_kind(self.docs, "Deployment")}

    def services(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(name, deployment, container) of every medtransfer process (not the UI)."""
        for name, deployment in self.deployments.items():
            if name != "temporal-ui":
                (container,) = pod_of(deployment)["containers"]
                yield name, deployment, container


@pytest.fixture(scope="module")
def agencies() -> list[Agency]:
    assert len(AGENCIES) >= 2, "two example agencies at least, so custody has another to refuse"
    return [Agency(directory, render(directory)) for directory in AGENCIES]


def side_of(name: str) -> str | None:
    return next((side for side in SIDES if name.startswith(f"{side}-")), None)


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_every_kustomization_matches_the_schemas(directory: Path, version: str) -> None:
    errors = [e for e in (schema_errors(doc, version) for doc in render(directory)) if e]
    assert errors == []


def test_no_kustomization_renders_a_secret() -> None:
    assert not of_kind(everything(), "Secret"), "Secrets are created by the operator"


# ---------------------------------------------------------------- network policies


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class Network:
    """NetworkPolicy semantics: a pod selected by no policy of a direction is open in that
    direction; once selected, only what some selecting policy's rule allows passes. A
    connection needs the source's egress and the destination's ingress."""

    policies: tuple[dict[str, Any], ...]
    namespace_labels: Mapping[str, Mapping[str, str]]

    def labels_of(self, namespace: str) -> Mapping[str, str]:
        return self.namespace_labels.get(namespace, {"kubernetes.io/metadata.name": namespace})

    def _peer(self, peer: Mapping[str, Any], policy_namespace: str, pod: Pod) -> bool:
        if "ipBlock" in peer:
            return False  # addresses outside the cluster: never one of our pods
        if "namespaceSelector" in peer:
            in_namespace = selects(peer["namespaceSelector"], self.labels_of(pod.namespace))
        else:
            in_namespace = pod.namespace == policy_namespace
        return in_namespace and selects(peer.get("podSelector", {}), pod.labels)

    @staticmethod
    def _port(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
        if not ports:
            return True
        for entry in ports:
            assert isinstance(entry.get("port", 0), int), (
                "numeric ports only, so this check can read them"
            )
            if entry.get("protocol", "TCP") != protocol:
                continue
            if "port" not in entry or entry["port"] <= port <= entry.get("endPort", entry["port"]):
                return True
        return False

    def _direction(self, pod: Pod, other: Pod, port: int, protocol: str, kind: str) -> bool:
        key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], pod.labels)
        ]
        if not selecting:
            return True
        return any(
            (
                not rule.get(peers_key)
                or any(
                    self._peer(peer, p["metadata"]["namespace"], other) for peer in rule[peers_key]
                )
            )
            and self._port(rule.get("ports"), port, protocol)
            for p in selecting
            for rule in p["spec"].get(key, [])
        )

    def allows(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        return self._direction(source, destination, port, protocol, "Egress") and self._direction(
            destination, source, port, protocol, "Ingress"
        )


@pytest.fixture(scope="module")
def network(agencies: list[Agency]) -> Network:
    docs = [d for a in agencies for d in a.docs] + list(render(KUBERNETES / "platform"))
    labels = {
        a.namespace["metadata"]["name"]: {
            "kubernetes.io/metadata.name": a.namespace["metadata"]["name"],
            **a.namespace["metadata"]["labels"],
        }
        for a in agencies
    }
    return Network(tuple(of_kind(docs, "NetworkPolicy")), labels)


def pods_of(agency: Agency) -> dict[str, Pod]:
    namespace = agency.namespace["metadata"]["name"]
    return {
        name: Pod(namespace, d["spec"]["template"]["metadata"]["labels"])
        for name, d in agency.deployments.items()
    }


def stores_of(agency: Agency) -> dict[str, Pod]:
    namespace = agency.namespace["metadata"]["name"]
    return {
        store: Pod(
            namespace, {"app.kubernetes.io/name": "postgresql", "medtransfer.io/store": store}
        )
        for store in ("incoming-agency", "outgoing-agency", "audit")
    }


BROKER = Pod("kafka", {"app.kubernetes.io/name": "kafka"})
FRONTEND = Pod(
    "temporal", {"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "frontend"}
)
HISTORY = Pod(
    "temporal", {"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "history"}
)
INTERNAL_FRONTEND = Pod(
    "temporal",
    {"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "internal-frontend"},
)
TEMPORAL_STORE = Pod(
    "medtransfer-data", {"app.kubernetes.io/name": "postgresql", "medtransfer.io/store": "temporal"}
)
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
DNS = Pod("kube-system", {"k8s-app": "kube-dns"})


def test_every_workload_namespace_denies_by_default(
    agencies: list[Agency], network: Network
) -> None:
    workload_namespaces = {a.namespace["metadata"]["name"] for a in agencies} | PLATFORM_NAMESPACES
    for policy in network.policies:
        for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
            for peer in rule.get("to", []) + rule.get("from", []):
                named_namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                workload_namespaces |= {named_namespace.get("kubernetes.io/metadata.name")} - {None}
    workload_namespaces -= CLUSTER_SERVICES
    assert {"kafka", "temporal", "medtransfer-data"} <= workload_namespaces
    for namespace in sorted(workload_namespaces):
        deny_all = [
            p
            for p in network.policies
            if p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny_all, f"namespace {namespace} has no default-deny NetworkPolicy"
    for agency in agencies:
        deployed = {d["metadata"]["namespace"] for d in agency.deployments.values()}
        assert deployed == {agency.namespace["metadata"]["name"]}


def test_only_the_service_pods_reach_kafka_temporal_and_their_own_store(
    agencies: list[Agency], network: Network
) -> None:
    for agency in agencies:
        others = [stores_of(a) for a in agencies if a is not agency]
        for name, pod in pods_of(agency).items():
            component = pod.labels["app.kubernetes.io/component"]
            where = f"{agency.name}/{name}"
            assert network.allows(pod, BROKER, KAFKA_PORT) == (
                component in {"api", "worker", "audit"}
            ), where
            assert network.allows(pod, FRONTEND, TEMPORAL_PORT) == (
                component in {"api", "worker", "ui"}
            ), where
            for behind in ((HISTORY, HISTORY_PORT), (INTERNAL_FRONTEND, INTERNAL_FRONTEND_PORT)):
                assert not network.allows(pod, *behind), where
            own = "audit" if name == "audit" else f"{side_of(name)}-agency"
            for store, store_pod in stores_of(agency).items():
                assert network.allows(pod, store_pod, STORE_PORT) == (store == own), (
                    f"{where} -> {store}"
                )
            for stores in others:
                assert not any(network.allows(pod, s, STORE_PORT) for s in stores.values()), where
            assert not network.allows(pod, TEMPORAL_STORE, STORE_PORT), where
        # Anything else, here or elsewhere, even labelled like a service: nothing.
        namespace = agency.namespace["metadata"]["name"]
        impostors = [
            Pod(namespace, {"app.kubernetes.io/name": "debug"}),
            Pod(
                "default",
                {"app.kubernetes.io/name": "incoming-api", "app.kubernetes.io/component": "api"},
            ),
            Pod(
                "temporal",
                {"app.kubernetes.io/name": "temporal", "app.kubernetes.io/component": "web"},
            ),
            INGRESS_CONTROLLER,
        ]
        for impostor in impostors:
            targets = [(BROKER, KAFKA_PORT), (FRONTEND, TEMPORAL_PORT)]
            targets += [(s, STORE_PORT) for s in stores_of(agency).values()]
            for target, port in targets:
                assert not network.allows(impostor, target, port), f"{impostor} -> {target}"
    # Temporal's own store: Temporal's servers only.
    assert network.allows(HISTORY, TEMPORAL_STORE, STORE_PORT)
    assert not network.allows(BROKER, TEMPORAL_STORE, STORE_PORT)


def test_the_ui_reaches_only_the_temporal_frontend(
    agencies: list[Agency], network: Network
) -> None:
    for agency in agencies:
        pods = pods_of(agency)
        ui = pods["temporal-ui"]
        assert network.allows(ui, FRONTEND, TEMPORAL_PORT)
        # The codec endpoint is called by the operator's browser through the ingress, not by the UI.
        blocked = [
            (BROKER, KAFKA_PORT),
            (HISTORY, HISTORY_PORT),
            (INTERNAL_FRONTEND, INTERNAL_FRONTEND_PORT),
        ]
        blocked += [
            (pods["incoming-api"], 8001),
            (pods["outgoing-api"], 8002),
            (pods["incoming-worker"], 9100),
        ]
        blocked += [(s, STORE_PORT) for s in stores_of(agency).values()]
        for target, port in blocked:
            assert not network.allows(ui, target, port), (
                f"{agency.name}: the UI reaches {target}:{port}"
            )


def test_the_ingress_controller_reaches_the_apis_and_the_ui_only(
    agencies: list[Agency], network: Network
) -> None:
    for agency in agencies:
        pods = pods_of(agency)
        assert network.allows(INGRESS_CONTROLLER, pods["incoming-api"], 8001)
        assert network.allows(INGRESS_CONTROLLER, pods["outgoing-api"], 8002)
        assert network.allows(INGRESS_CONTROLLER, pods["temporal-ui"], 8080)
        for name in ("incoming-worker", "outgoing-worker", "audit"):
            assert not network.allows(INGRESS_CONTROLLER, pods[name], 9100), name
        for store in stores_of(agency).values():
            assert not network.allows(INGRESS_CONTROLLER, store, STORE_PORT)
        for name, pod in pods.items():
            assert network.allows(pod, DNS, 53, "UDP"), f"{name}: no DNS"
            assert not network.allows(Pod("default", {}), pod, 8001), name


def test_the_network_check_bites(agencies: list[Agency], network: Network) -> None:
    agency = agencies[0]
    debug = Pod(agency.namespace["metadata"]["name"], {"app.kubernetes.io/name": "debug"})
    store = stores_of(agency)["incoming-agency"]
    assert not network.allows(debug, store, STORE_PORT)
    # allow-dns selects every pod for egress, so it alone still closes the way out; without
    # it, the default deny and the store's own policy, the store is open.
    for dropped, opens in (
        ({"default-deny", "incoming-store-ingress"}, False),
        ({"default-deny", "incoming-store-ingress", "allow-dns"}, True),
    ):
        loosened = tuple(
            p
            for p in network.policies
            if not (
                p["metadata"]["namespace"] == debug.namespace and p["metadata"]["name"] in dropped
            )
        )
        assert Network(loosened, network.namespace_labels).allows(debug, store, STORE_PORT) == opens
    assert Network((), {}).allows(debug, BROKER, KAFKA_PORT)


# ---------------------------------------------------------------- the Temporal UI


def test_the_ui_is_read_only_behind_single_sign_on_with_the_agency_codec(
    agencies: list[Agency],
) -> None:
    for agency in agencies:
        deployment = agency.deployments["temporal-ui"]
        (container,) = pod_of(deployment)["containers"]
        env = container_env(agency.docs, container)
        where = agency.name
        assert env["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true", where
        for switch in UI_WRITE_SWITCHES:
            assert env.get(switch) == "true", f"{where}: {switch}"
        for name, value in env.items():
            if name.startswith("TEMPORAL_") and name.endswith("_DISABLED"):
                assert value == "true", f"{where}: {name}"
        # Single sign-on: OIDC with the client secret from a Secret, callbacks on its host.
        assert env["TEMPORAL_AUTH_ENABLED"] == "true", where
        assert env["TEMPORAL_AUTH_TYPE"] == "oidc", where
        assert str(env["TEMPORAL_AUTH_PROVIDER_URL"]).startswith("https://"), where
        assert isinstance(env["TEMPORAL_AUTH_CLIENT_SECRET"], SecretKey), where
        assert env["TEMPORAL_CSRF_COOKIE_INSECURE"] == "false", where
        (rule,) = named(agency.docs, "Ingress", "temporal-ui")["spec"]["rules"]
        host = rule["host"]
        assert host == f"temporal.{agency.name}.medtransfer.example"
        assert env["TEMPORAL_AUTH_CALLBACK_URL"] == f"https://{host}/auth/sso/callback", where
        assert env["TEMPORAL_CORS_ORIGINS"] == f"https://{host}", where
        # The codec endpoint: the agency API's /codec on the UI's own origin, with the token.
        assert env["TEMPORAL_CODEC_ENDPOINT"] == f"https://{host}/codec", where
        assert env["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true", where
        paths = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
        codec_service = named(agency.docs, "Service", paths["/codec"]["name"])
        (api,) = [
            d
            for d in agency.deployments.values()
            if codec_service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert api["metadata"]["labels"]["app.kubernetes.io/component"] == "api", where
        assert paths["/"]["name"] == "temporal-ui"
        # The agency's own namespace, over mutual TLS with the UI's own certificate.
        assert env["TEMPORAL_DEFAULT_NAMESPACE"] == agency.config["MEDTRANSFER_TEMPORAL_NAMESPACE"]
        assert env["TEMPORAL_ADDRESS"] == agency.config["MEDTRANSFER_TEMPORAL_TARGET"]
        assert env["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true", where
        for name in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA"):
            volume = mounted_file(deployment, container, str(env[name]))
            assert volume["secret"]["secretName"] == "temporal-ui-client-tls", name
        assert not any(name.startswith("MEDTRANSFER_TEMPORAL_CODEC") for name in env), (
            "the UI holds no codec key"
        )


# ---------------------------------------------------------------- key custody


def regions() -> set[str]:
    data = json.loads((REPO_DIR / "data" / "regions.json").read_text(encoding="utf-8"))
    return {r["code"] for r in data["regions"]}


def test_each_agency_mounts_its_own_regions_keys_and_no_other(agencies: list[Agency]) -> None:
    served_by: dict[str, set[str]] = {}
    for agency in agencies:
        config = agency.config
        assert config["MEDTRANSFER_DEPLOYMENT"] == agency.name
        assert agency.namespace["metadata"]["labels"]["medtransfer.io/agency"] == agency.name
        served = set(json.loads(config["MEDTRANSFER_SERVED_REGIONS"]))
        assert served, agency.name
        assert served <= regions(), agency.name
        served_by[agency.name] = served
        keys_dir = PurePosixPath(config["MEDTRANSFER_KEYS_DIR"])
        for name, deployment in agency.deployments.items():
            pod = pod_of(deployment)
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            key_volumes = {
                v["name"]: match.group(1)
                for v in volumes.values()
                if (match := KEY_SECRET.match(v.get("secret", {}).get("secretName", "")))
            }
            held = set(key_volumes.values())
            signs = deployment["metadata"]["labels"]["app.kubernetes.io/component"] in {
                "api",
                "worker",
            }
            assert held == (served if signs else set()), (
                f"{agency.name}/{name} holds keys of {held}"
            )
            for container in pod["containers"]:
                for mount in container.get("volumeMounts", []):
                    path = PurePosixPath(mount["mountPath"])
                    if mount["name"] in key_volumes:
                        assert path == keys_dir / key_volumes[mount["name"]], path
                        assert mount.get("readOnly") is True, path
                        assert "subPath" not in mount, path
                        assert "items" not in volumes[mount["name"]]["secret"], path
                    else:
                        assert not path.is_relative_to(keys_dir), (
                            f"{name}: {path} in the keys folder"
                        )
    names = sorted(served_by)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not served_by[first] & served_by[second], f"{first} and {second} share regions"


def test_the_services_verify_with_the_signed_registry_and_the_operators_key(
    agencies: list[Agency],
) -> None:
    for agency in agencies:
        for name, deployment, container in agency.services():
            if name == "audit":
                continue
            env = container_env(agency.docs, container)
            volume = mounted_file(deployment, container, str(env["MEDTRANSFER_KEY_REGISTRY_FILE"]))
            assert volume["configMap"]["name"] == "medtransfer-key-registry", name
            platform_key = env["MEDTRANSFER_PLATFORM_PUBLIC_KEY"]
            assert isinstance(platform_key, str), name
            assert platform_key, name


def test_no_deployment_runs_the_local_demo(agencies: list[Agency]) -> None:
    for directory in KUSTOMIZATIONS:
        docs = render(directory)
        for config_map in of_kind(docs, "ConfigMap"):
            assert "MEDTRANSFER_LOCAL_DEMO" not in config_map.get("data", {}), directory
        for deployment in of_kind(docs, "Deployment"):
            for container in pod_of(deployment)["containers"]:
                assert "MEDTRANSFER_LOCAL_DEMO" not in container_env(docs, container), directory
    for path in [*sorted(KUBERNETES.rglob("*.yaml")), PRODUCTION / "compose" / "compose.yaml"]:
        assert "MEDTRANSFER_LOCAL_DEMO" not in path.read_text(encoding="utf-8"), path


# ---------------------------------------------------------------- client settings


def settings_of(env: Mapping[str, str | SecretKey], audit: bool) -> Settings:
    """The services' own Settings, read the way the process reads them: from an environment
    holding exactly the manifests' MEDTRANSFER_* variables (a Secret's value stands in as
    a placeholder), never this machine's."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MEDTRANSFER_"):
                patch.delenv(name)
        for name, value in env.items():
            if name.startswith("MEDTRANSFER_"):
                shown = f"<{value.secret}/{value.key}>" if isinstance(value, SecretKey) else value
                patch.setenv(name, shown)
        return AuditSettings() if audit else Settings()


def temporal_values() -> dict[str, Any]:
    values: dict[str, Any] = load_all(TEMPORAL_VALUES)[0]
    return values


def test_the_services_reach_temporal_with_mtls_and_their_token(agencies: list[Agency]) -> None:
    values = temporal_values()
    frontend_name = values["server"]["config"]["tls"]["frontend"]["client"]["serverName"]
    namespaces = {n["name"] for n in values["server"]["config"]["namespaces"]["namespace"]}
    for agency in agencies:
        for name, deployment, container in agency.services():
            if name == "audit":
                continue  # no Temporal client
            env = container_env(agency.docs, container)
            where = f"{agency.name}/{name}"
            for setting in ("CERT_FILE", "KEY_FILE", "CA_FILE"):
                path = str(env[f"MEDTRANSFER_TEMPORAL_TLS_{setting}"])
                volume = mounted_file(deployment, container, path)
                assert volume["secret"]["secretName"] == "medtransfer-temporal-client-tls", where
            assert env["MEDTRANSFER_TEMPORAL_TLS_SERVER_NAME"] == frontend_name, where
            assert str(env["MEDTRANSFER_TEMPORAL_TARGET"]).startswith(f"{frontend_name}:"), where
            token = mounted_file(
                deployment, container, str(env["MEDTRANSFER_TEMPORAL_API_KEY_FILE"])
            )
            assert token["secret"]["secretName"] == "medtransfer-temporal-token", where
            assert env["MEDTRANSFER_TEMPORAL_CODEC_KEYS"] == SecretKey(
                "medtransfer-temporal-codec", "keys.json"
            )
            assert env["MEDTRANSFER_TEMPORAL_CODEC_KEY_ID"] == SecretKey(
                "medtransfer-temporal-codec", "key-id"
            )
            assert env["MEDTRANSFER_TEMPORAL_NAMESPACE"] in namespaces, where
            settings = settings_of(env, audit=False)
            assert settings.temporal_tls_cert_file is not None, where
            assert settings.temporal_namespace == f"medtransfer-{agency.name}"


def kafka_principal(name: str, prefix: str, deployment: str) -> str:
    if name == "audit":
        return f"{prefix}-audit-{deployment}"
    side = side_of(name)
    assert side is not None, name
    settings = Settings.model_validate({"topic_prefix": prefix, "deployment": deployment})
    return settings.consumer_group(side)  # type: ignore[arg-type]


def test_the_services_reach_kafka_over_sasl_ssl_as_their_own_principal(
    agencies: list[Agency],
) -> None:
    for agency in agencies:
        prefix, deployment = (
            agency.config["MEDTRANSFER_TOPIC_PREFIX"],
            agency.config["MEDTRANSFER_DEPLOYMENT"],
        )
        for name, pod_deployment, container in agency.services():
            env = container_env(agency.docs, container)
            where = f"{agency.name}/{name}"
            settings = settings_of(env, audit=name == "audit")
            assert settings.kafka_security_protocol == "SASL_SSL", where
            assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512", where
            assert settings.kafka_sasl_username == kafka_principal(name, prefix, deployment), where
            secret = f"medtransfer-kafka-{side_of(name) or 'audit'}"
            assert env["MEDTRANSFER_KAFKA_SASL_PASSWORD"] == SecretKey(secret, "password"), where
            ca = mounted_file(pod_deployment, container, str(env["MEDTRANSFER_KAFKA_SSL_CA_FILE"]))
            assert ca["secret"]["secretName"] == "medtransfer-kafka-ca", where
            ports = {int(server.rsplit(":", 1)[1]) for server in settings.kafka_servers}
            assert ports == {KAFKA_PORT}, f"{where}: only the SASL_SSL listener"


def acl_lines(deployment: str) -> list[list[str]]:
    result = subprocess.run(
        ["/bin/sh", str(ACLS_SCRIPT)],
        env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "DEPLOYMENT": deployment},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def acl_table(deployment: str, prefix: str = "medtransfer") -> set[tuple[str, str, str, str]]:
    """(principal, operation, resource type, resource) of every ACL acls.sh adds."""
    table = set()
    for words in acl_lines(deployment):
        option = {
            words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("--")
        }
        assert "--add" in words, words
        assert "--deny-principal" not in words, words
        assert option["--resource-pattern-type"] == "literal", words
        (resource_type,) = {"--topic", "--group", "--cluster", "--transactional-id"} & set(words)
        table.add(
            (
                option["--allow-principal"].removeprefix("User:"),
                option["--operation"],
                resource_type.removeprefix("--"),
                option[resource_type],
            )
        )
    return table


def expected_acls(deployment: str, prefix: str = "medtransfer") -> set[tuple[str, str, str, str]]:
    topics = Topics(prefix=prefix)
    inbox = {"incoming": topics.to_incoming, "outgoing": topics.to_outgoing}
    outbox = {"incoming": topics.to_outgoing, "outgoing": topics.to_incoming}
    expected = set()
    for side in SIDES:
        principal = f"{prefix}-{side}-{deployment}"
        expected |= {
            (principal, "Read", "topic", inbox[side]),
            (principal, "Read", "group", principal),
            (principal, "Write", "topic", outbox[side]),
            (principal, "Write", "topic", topics.audit),
            (principal, "Write", "topic", topics.dead_letter),
        }
    audit = f"{prefix}-audit-{deployment}"
    expected |= {(audit, "Read", "topic", topics.audit), (audit, "Read", "group", audit)}
    expected |= {
        (audit, "Describe", "topic", t)
        for t in (topics.to_incoming, topics.to_outgoing, topics.dead_letter)
    }
    return expected


def test_the_kafka_acls_give_each_principal_its_topics_and_group_only(
    agencies: list[Agency],
) -> None:
    for agency in agencies:
        deployment = agency.config["MEDTRANSFER_DEPLOYMENT"]
        table = acl_table(deployment)
        assert table == expected_acls(deployment), agency.name
        prefix = agency.config["MEDTRANSFER_TOPIC_PREFIX"]
        principals = {kafka_principal(name, prefix, deployment) for name, _, _ in agency.services()}
        assert {row[0] for row in table} == principals, "the ACLs name the manifests' principals"


def test_the_acl_table_of_the_operator_notes_is_the_scripts() -> None:
    rows = set()
    for line in TRUST_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in {"Read", "Write", "Describe"}:
            rows.add((cells[0], cells[1], cells[2], cells[3]))
    assert rows == acl_table("<deployment>")


# ---------------------------------------------------------------- the Temporal server

# The fields of Temporal's configuration these values set (temporalio/temporal,
# common/config/config.go: RootTLS, GroupTLS, ServerTLS, ClientTLS, Authorization,
# JWTKeyProvider), so a misspelt key fails here rather than being ignored by the server.
TEMPORAL_TLS_FIELDS = {
    "internode",
    "frontend",
    "systemWorker",
    "remoteClusters",
    "expirationChecks",
    "refreshInterval",
}
TEMPORAL_GROUP_FIELDS = {"client", "server", "hostOverrides"}
TEMPORAL_SERVER_TLS_FIELDS = {
    "certFile",
    "keyFile",
    "clientCaFiles",
    "certData",
    "keyData",
    "clientCaData",
    "requireClientAuth",
}
TEMPORAL_CLIENT_TLS_FIELDS = {
    "serverName",
    "disableHostVerification",
    "rootCaFiles",
    "rootCaData",
    "forceTLS",
}
TEMPORAL_AUTHORIZATION_FIELDS = {
    "jwtKeyProvider",
    "permissionsClaimName",
    "permissionsRegex",
    "authorizer",
    "claimMapper",
    "authHeaderName",
    "authExtraHeaderName",
    "audience",
    "remoteClusterAuth",
}


def test_the_temporal_server_requires_client_certificates_and_tokens(
    agencies: list[Agency],
) -> None:
    values = temporal_values()
    server = values["server"]
    tls = server["config"]["tls"]
    assert set(tls) <= TEMPORAL_TLS_FIELDS
    mounts = {m["mountPath"]: m for m in server["additionalVolumeMounts"]}
    volumes = {v["name"]: v for v in server["additionalVolumes"]}

    def secret_of(path: str) -> str:
        mount = mounts[str(PurePosixPath(path).parent)]
        assert mount["readOnly"] is True, path
        assert "subPath" not in mount, path
        secret: str = volumes[mount["name"]]["secret"]["secretName"]
        return secret

    for group in ("internode", "frontend"):
        assert set(tls[group]) <= TEMPORAL_GROUP_FIELDS, group
        assert set(tls[group]["server"]) <= TEMPORAL_SERVER_TLS_FIELDS, group
        assert set(tls[group]["client"]) <= TEMPORAL_CLIENT_TLS_FIELDS, group
        assert tls[group]["server"]["requireClientAuth"] is True, group
        paths = [tls[group]["server"]["certFile"], tls[group]["server"]["keyFile"]]
        paths += tls[group]["server"]["clientCaFiles"] + tls[group]["client"]["rootCaFiles"]
        assert {secret_of(p) for p in paths} == {f"temporal-{group}-tls"}, group
    # Two authorities: a client certificate never passes for a server's.
    internode_cas = set(tls["internode"]["server"]["clientCaFiles"])
    assert not internode_cas & set(tls["frontend"]["server"]["clientCaFiles"])
    authorization = server["config"]["authorization"]
    assert set(authorization) <= TEMPORAL_AUTHORIZATION_FIELDS
    assert authorization["authorizer"] == "default"
    assert authorization["claimMapper"] == "default"
    assert authorization["permissionsClaimName"] == "permissions"
    sources = authorization["jwtKeyProvider"]["keySourceURIs"]
    assert sources
    assert all(uri.startswith("https://") for uri in sources)
    # Temporal's own clients bypass the authorizer on the internal frontend, reached with an
    # internode certificate only; no standing admin pod; each agency has its own UI.
    assert server["internal-frontend"]["enabled"] is True
    assert values["admintools"]["enabled"] is False
    assert values["web"]["enabled"] is False
    namespaces = {n["name"] for n in server["config"]["namespaces"]["namespace"]}
    for agency in agencies:
        assert agency.config["MEDTRANSFER_TEMPORAL_NAMESPACE"] in namespaces
        # /codec accepts the same IdP's tokens as Temporal's frontend.
        assert agency.config["MEDTRANSFER_CODEC_JWKS_URL"] in sources


def test_the_settings_ahead_of_the_code_are_the_ones_the_notes_list() -> None:
    notes = TRUST_DOC.read_text(encoding="utf-8")
    for name in ANNOUNCED_SETTINGS:
        assert f"`{name}`" in notes, name
