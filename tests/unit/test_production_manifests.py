"""deploy/production, checked offline: nothing here builds an image or talks to a cluster.

* every YAML file parses; compose.yaml validates against the Compose specification's JSON
  schema (vendored in check-jsonschema); the Kubernetes base renders with kustomize and
  every object validates against the Kubernetes schemas in strict mode (kubernetes-validate);
* Dockerfiles follow our policies (a small checker below) and pass hadolint;
* the manifests keep the policies the README promises (non-root, read-only, probes,
  resources, secrets from Secrets, disruption budgets) and the Kafka and Temporal settings
  of kafka.md and temporal.md;
* every MEDTRANSFER_* name they use is a setting the code reads (configuration drift).

What closes Temporal, Kafka and the databases to everyone but the services (network
policies, mTLS, ACLs, key custody) is checked in test_production_trust.py.
"""

from __future__ import annotations

import copy
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from services.audit.config import AuditSettings
from services.common.config import Settings
from services.common.metrics import WORKER_ADDR_ENV, WORKER_PORT_ENV, worker_metrics_port

pytestmark = pytest.mark.unit

REPO_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = REPO_DIR / "deploy" / "production"
DOCKER_DIR = PRODUCTION / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
COMPOSE_FILE = PRODUCTION / "compose" / "compose.yaml"
K8S_BASE = PRODUCTION / "kubernetes" / "base"
# The oldest Kubernetes minor we claim, and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.31", kubernetes_validate.latest_version())
PINNED_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
# Settings that carry credentials: never a literal value in a manifest.
SECRET_SETTINGS = {
    "MEDTRANSFER_API_KEYS",
    "MEDTRANSFER_INCOMING_DATABASE_URL",
    "MEDTRANSFER_OUTGOING_DATABASE_URL",
    "MEDTRANSFER_AUDIT_DATABASE_URL",
    "MEDTRANSFER_KAFKA_SASL_PASSWORD",
    "MEDTRANSFER_TEMPORAL_CODEC_KEYS",
}
# Settings the manifests set ahead of the code (docs/production-trust.md, "Settings the
# services are to read"). A name leaves this set in the change that makes the code read it.
ANNOUNCED_SETTINGS: set[str] = set()


def yaml_files() -> list[Path]:
    return sorted(p for p in PRODUCTION.rglob("*") if p.suffix in {".yaml", ".yml"})


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_production_tree_has_what_the_readme_lists() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "incoming-agency.Dockerfile",
        "outgoing-agency.Dockerfile",
        "audit.Dockerfile",
    }
    for name in ("README.md", "kafka.md", "temporal.md", "temporal-values.yaml"):
        assert (PRODUCTION / name).is_file(), name
    assert COMPOSE_FILE.is_file()
    assert (K8S_BASE / "kustomization.yaml").is_file()


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(PRODUCTION)))
def test_yaml_parses(path: Path) -> None:
    assert load_all(path), f"{path} holds no document"


# ---------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for our
    policies; the real parser is hadolint's, run below)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    return instructions


def dockerfile_violations(text: str) -> list[str]:
    """Our image policies; an empty list means the Dockerfile complies."""
    instructions = parse_dockerfile(text)
    problems: list[str] = []
    stages: list[list[Instruction]] = []
    aliases: set[str] = set()
    for ins in instructions:
        if ins.keyword != "FROM":
            if stages:
                stages[-1].append(ins)
            elif ins.keyword != "ARG":
                problems.append(f"line {ins.line}: {ins.keyword} before the first FROM")
            continue
        stages.append([])
        words = [w for w in ins.args.split() if not w.startswith("--")]
        image = words[0]
        if image not in aliases:
            if not PINNED_IMAGE.match(image):
                problems.append(f"line {ins.line}: base {image} not pinned by tag and digest")
            elif image.split("@")[0].endswith(":latest"):
                problems.append(f"line {ins.line}: base {image} uses the tag latest")
        if len(words) >= 3 and words[1].upper() == "AS":
            aliases.add(words[2])
    if len(stages) < 2:
        problems.append("not multi-stage (build and runtime stages expected)")
    if not stages:
        return problems
    final = stages[-1]
    for ins in instructions:
        if ins.keyword == "ADD" and re.search(r"(https?|ftp)://", ins.args):
            problems.append(f"line {ins.line}: ADD of a remote URL")
        if ins.keyword in {"ENV", "ARG"} and re.search(
            r"(PASSWORD|SECRET|TOKEN|API_KEYS|DATABASE_URL)\b", ins.args, re.IGNORECASE
        ):
            problems.append(f"line {ins.line}: a credential in {ins.keyword}")
        if ins.keyword == "COPY" and re.search(r"(^|\s)(var|keys|\.venv)/?(\s|$)", ins.args):
            problems.append(f"line {ins.line}: COPY of local state or keys")
    copies_lock = any(
        ins.keyword == "COPY" and "requirements.lock" in ins.args.split()
        for stage in stages[:-1]
        for ins in stage
    )
    if not copies_lock:
        problems.append("no COPY of requirements.lock into a build stage")
    if not any(
        ins.keyword == "RUN" and re.search(r"(--constraint|-c)\s+requirements\.lock", ins.args)
        for stage in stages[:-1]
        for ins in stage
    ):
        problems.append("requirements.lock not used as pip constraints in the build")
    users = [ins for ins in final if ins.keyword == "USER"]
    if not users:
        problems.append("final stage has no USER (runs as root)")
    else:
        user = users[-1].args.split(":")[0]
        if not user.isdigit() or int(user) == 0:
            problems.append(f"final USER {users[-1].args} is not a numeric non-root uid")
        # Everything installed before USER is root's: the service can read it, not change it.
        runs = [ins for ins in final[final.index(users[-1]) :] if ins.keyword == "RUN"]
        if runs:
            problems.append(f"line {runs[0].line}: RUN after USER")
    healthchecks = [ins for ins in final if ins.keyword == "HEALTHCHECK"]
    if not healthchecks or healthchecks[-1].args.upper().startswith("NONE"):
        problems.append("final stage has no HEALTHCHECK")
    entrypoints = [ins for ins in final if ins.keyword == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].args.startswith("["):
        problems.append("ENTRYPOINT missing or not in exec form")
    return problems


GOOD_DOCKERFILE = """\
FROM python:3.11.14-slim-bookworm@sha256:{d} AS build
COPY requirements.lock ./
RUN pip wheel -c requirements.lock -r r.txt
FROM python:3.11.14-slim-bookworm@sha256:{d}
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK CMD ["python", "h.py"]
ENTRYPOINT ["python"]
""".format(d="0" * 64)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t, None),
        (lambda t: t.replace("@sha256:" + "0" * 64, "", 1), "not pinned"),
        (lambda t: t.replace("USER 10001:10001\n", ""), "no USER"),
        (lambda t: t.replace("USER 10001:10001", "USER root"), "numeric non-root"),
        (lambda t: t.replace("HEALTHCHECK CMD", "HEALTHCHECK NONE #"), "no HEALTHCHECK"),
        (lambda t: t.split("FROM", 2)[0] + "FROM" + t.split("FROM", 2)[2], "multi-stage"),
        (lambda t: t.replace("COPY requirements.lock ./", "COPY . ./"), "requirements.lock"),
        (lambda t: t + "ADD https://example.org/x.tgz /x\n", "remote URL"),
        (lambda t: t + "ENV MEDTRANSFER_API_KEYS=abc\n", "credential"),
        (lambda t: t + "RUN id\n", "RUN after USER"),
        (lambda t: t.replace('ENTRYPOINT ["python"]', "ENTRYPOINT python"), "exec form"),
    ],
)
def test_dockerfile_checker_catches_each_violation(change: Any, expected: str | None) -> None:
    problems = dockerfile_violations(change(GOOD_DOCKERFILE))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_policies(dockerfile: Path) -> None:
    assert dockerfile_violations(dockerfile.read_text(encoding="utf-8")) == []


def test_dockerfiles_share_one_pinned_base() -> None:
    bases = {
        word
        for dockerfile in DOCKERFILES
        for ins in parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
        if ins.keyword == "FROM"
        for word in ins.args.split()[:1]
    }
    assert len(bases) == 1, bases
    assert bases.pop().startswith("python:3.11.")


def venv_tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} not installed: it is in the dev extra (make install)"
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [venv_tool("hadolint"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


SHELL_SCRIPTS = sorted(PRODUCTION.rglob("*.sh"))


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(PRODUCTION)))
def test_shellcheck(script: Path) -> None:
    # These scripts run inside containers no test here starts: lint is what they get.
    result = subprocess.run(
        [venv_tool("shellcheck"), "--external-sources", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_is_an_allowlist_that_keeps_state_and_keys_out() -> None:
    lines = [
        line.strip()
        for line in (REPO_DIR / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything excluded first, then what an image needs"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for path in allowed:
        assert (REPO_DIR / path).exists(), f".dockerignore allows {path}, which does not exist"
        assert not path.startswith(("var", ".venv", "keys")), path
    assert "**/*.pem" in lines
    assert "**/.env" in lines
    # Everything the Dockerfiles COPY from the context is allowed in.
    for dockerfile in DOCKERFILES:
        for ins in parse_dockerfile(dockerfile.read_text(encoding="utf-8")):
            if ins.keyword == "COPY" and "--from=" not in ins.args:
                for source in ins.args.split()[:-1]:
                    assert source.rstrip("/") in allowed, f"{dockerfile.name}: {source}"


def test_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    (tmp_path / "MEDTRANSFER_API_KEYS").write_text('{"k": {"roles": ["clerk"]}}\n')
    (tmp_path / "MEDTRANSFER_INCOMING_DATABASE_URL").write_text("postgresql+psycopg://x\n")
    (tmp_path / "MEDTRANSFER_bad-name").write_text("ignored")
    env = {
        "PATH": os.environ["PATH"],
        "SECRETS_DIR": str(tmp_path),
        # Already set: the environment wins over the file.
        "MEDTRANSFER_INCOMING_DATABASE_URL": "from-environment",
    }
    show = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('MEDTRANSFER')}))"
    result = subprocess.run(
        ["/bin/sh", str(DOCKER_DIR / "entrypoint.sh"), sys.executable, "-c", show],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = json.loads(result.stdout)
    assert seen == {
        "MEDTRANSFER_API_KEYS": '{"k": {"roles": ["clerk"]}}',
        "MEDTRANSFER_INCOMING_DATABASE_URL": "from-environment",
    }
    assert "ignoring" in result.stderr


def test_healthcheck_reports_up_and_down() -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", DOCKER_DIR / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    main = healthcheck.main

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert main(["hc", f"http://127.0.0.1:{port}/health"]) == 0
        assert main(["hc", f"http://127.0.0.1:{port}/other"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert main(["hc", f"http://127.0.0.1:{port}/health"]) == 1  # nothing listens now
    assert main(["hc"]) == 2


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_all(COMPOSE_FILE)[0]


def compose_schema() -> dict[str, Any]:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_compose_schema_check_bites(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["incoming-api"]["helthcheck"] = {"test": ["CMD", "true"]}
    assert compose_errors(broken), "an unknown service key must fail the schema"


OUR_SERVICES = {"incoming-api", "incoming-worker", "outgoing-api", "outgoing-worker", "audit"}


def test_compose_runs_the_whole_system(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= OUR_SERVICES
    assert {"postgres", "kafka-1", "kafka-2", "kafka-3", "temporal"} <= set(services)
    for name in ("incoming-worker", "outgoing-worker"):
        assert services[name]["command"] == ["worker"]
        assert services[name]["deploy"]["replicas"] >= 2
        assert services[name]["healthcheck"]["test"][-1].endswith("/metrics")


def test_compose_images_are_pinned_or_built_here(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            assert image.startswith("medtransfer/"), name
            assert ":" in image, name
            assert service["build"]["dockerfile"].startswith("deploy/production/docker/")
            assert (REPO_DIR / service["build"]["dockerfile"]).is_file(), name
        else:
            assert PINNED_IMAGE.match(image), f"{name}: {image} not pinned by tag and digest"


def test_compose_hardens_our_services_and_keeps_secrets_in_files(compose: dict[str, Any]) -> None:
    for name in OUR_SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        for key in service["environment"]:
            assert key not in SECRET_SETTINGS, f"{name}: {key} belongs in a secret file"
        for secret in service.get("secrets", []):
            assert secret["target"] in SECRET_SETTINGS, f"{name}: {secret}"
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|PWD", key) and not key.endswith("_FILE"):
                assert str(value).startswith("${"), f"{name}: {key} is a literal"
    ignored = (PRODUCTION / ".gitignore").read_text(encoding="utf-8").split()
    assert "compose/secrets/" in ignored
    assert "compose/.env" in ignored


def test_compose_kafka_has_the_settings_of_kafka_md(compose: dict[str, Any]) -> None:
    brokers = [compose["services"][f"kafka-{n}"] for n in (1, 2, 3)]
    for broker in brokers:
        env = broker["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
    assert len({b["environment"]["KAFKA_NODE_ID"] for b in brokers}) == 3
    assert all(b["image"].startswith("apache/kafka:4.1.1@sha256:") for b in brokers)
    script = (PRODUCTION / "compose" / "kafka" / "create-topics.sh").read_text(encoding="utf-8")
    assert "--replication-factor 3" in script
    assert "min.insync.replicas=2" in script
    assert re.search(r"audit\.case-events\" \d+ -1", script), "the audit topic is kept for good"
    topics = Settings(topic_prefix="PREFIX").topics.all()
    for topic in topics:
        assert topic.replace("PREFIX", '"$TOPIC_PREFIX') in script, topic


def test_compose_temporal_runs_on_postgresql(compose: dict[str, Any]) -> None:
    server = compose["services"]["temporal"]
    assert server["image"].startswith("temporalio/server:")
    assert server["environment"]["DB"] == "postgres12"
    assert server["environment"]["POSTGRES_SEEDS"] == "postgres"
    settings_env = compose["x-medtransfer-env"]
    namespace = compose["services"]["temporal-namespace"]["environment"]["NAMESPACE"]
    assert settings_env["MEDTRANSFER_TEMPORAL_NAMESPACE"] == namespace


# ---------------------------------------------------------------- Kubernetes


def kustomize_bin() -> Path:
    result = subprocess.run(
        ["bash", "-c", f'source "{REPO_DIR}/deploy/local/lib.sh"; printf %s "$KUSTOMIZE_BIN"'],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    path = Path(result.stdout)
    assert path.is_file(), f"kustomize missing at {path}: run deploy/local/install.sh kustomize"
    return path


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kustomize_bin()), "build", str(K8S_BASE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def k8s_manifest_files() -> list[Path]:
    return sorted(p for p in K8S_BASE.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module", autouse=True)
def schemas_read_once() -> Iterator[None]:
    # kubernetes-validate reads its ~1 MB definitions file for every object; read each once.
    with pytest.MonkeyPatch.context() as patch:
        original = kubernetes_validate.utils.schema_contents
        patch.setattr(kubernetes_validate.utils, "schema_contents", functools.cache(original))
        yield


def schema_errors(doc: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}"
    return None


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_objects_match_the_schemas(rendered: list[dict[str, Any]], version: str) -> None:
    # The rendered objects are the files' objects plus the kustomization's labels and images.
    errors = [e for e in (schema_errors(doc, version) for doc in rendered) if e]
    assert errors == []


def test_kubernetes_schema_check_bites(rendered: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(next(d for d in rendered if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    assert schema_errors(deployment, K8S_VERSIONS[-1])


def test_kustomization_lists_every_manifest() -> None:
    listed = set(load_all(K8S_BASE / "kustomization.yaml")[0]["resources"])
    assert listed == {p.name for p in k8s_manifest_files()}


def by_kind(rendered: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered if d["kind"] == kind}


def test_deployments_run_hardened_with_resources_and_probes(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == OUR_SERVICES | {"temporal-ui"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            if name == "temporal-ui":
                assert PINNED_IMAGE.match(container["image"]), where
            else:
                assert re.match(r"^medtransfer/[a-z-]+:\d", container["image"]), where
            if name != "audit":  # no endpoint to probe (audit.yaml says why)
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in container, f"{where}: {probe}"
        mounts = {m["mountPath"]: m for c in pod["containers"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, name  # the only writable places on a read-only root
        volumes = {v["name"]: v for v in pod["volumes"]}
        for path, mount in mounts.items():
            if "emptyDir" not in volumes[mount["name"]]:
                assert mount.get("readOnly") is True, f"{name}: {path}"
                assert "subPath" not in mount, f"{name}: {path} would never see a renewal"
        # The region keys are the agency overlay's (test_production_trust.py): none here.
        assert not [p for p in mounts if p.startswith("/run/medtransfer/keys")], name


def env_of(deployment: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        yield from container.get("env", [])


def test_credentials_come_from_secrets_never_from_values(rendered: list[dict[str, Any]]) -> None:
    config = by_kind(rendered, "ConfigMap")["medtransfer-config"]["data"]
    assert not SECRET_SETTINGS & set(config)
    for name, deployment in by_kind(rendered, "Deployment").items():
        for var in env_of(deployment):
            if var["name"] in SECRET_SETTINGS:
                assert "secretKeyRef" in var["valueFrom"], f"{name}: {var['name']}"
    needs = {
        "incoming-api": {"MEDTRANSFER_INCOMING_DATABASE_URL", "MEDTRANSFER_API_KEYS"},
        "incoming-worker": {"MEDTRANSFER_INCOMING_DATABASE_URL"},
        "outgoing-api": {"MEDTRANSFER_OUTGOING_DATABASE_URL", "MEDTRANSFER_API_KEYS"},
        "outgoing-worker": {"MEDTRANSFER_OUTGOING_DATABASE_URL"},
        "audit": {"MEDTRANSFER_AUDIT_DATABASE_URL"},
    }
    for name, wanted in needs.items():
        assert wanted <= {v["name"] for v in env_of(by_kind(rendered, "Deployment")[name])}
    assert not by_kind(rendered, "Secret"), "Secrets are created by the operator, never committed"


def test_budgets_autoscalers_and_services_select_what_exists(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = by_kind(rendered, "Deployment")

    def selected(selector: dict[str, str]) -> set[str]:
        return {
            name
            for name, d in deployments.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        }

    budgets = by_kind(rendered, "PodDisruptionBudget")
    covered = set().union(
        *(selected(b["spec"]["selector"]["matchLabels"]) for b in budgets.values())
    )
    assert covered == OUR_SERVICES - {"audit"}
    for budget in budgets.values():
        (target,) = selected(budget["spec"]["selector"]["matchLabels"])
        assert budget["spec"]["minAvailable"] < deployments[target]["spec"]["replicas"]
    autoscalers = by_kind(rendered, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers.values()} == {
        "incoming-worker",
        "outgoing-worker",
    }
    for hpa in autoscalers.values():
        assert hpa["spec"]["minReplicas"] >= 2
    for service in by_kind(rendered, "Service").values():
        assert selected(service["spec"]["selector"]), service["metadata"]["name"]


# ---------------------------------------------------------------- Temporal values


def test_temporal_values_run_on_postgresql_without_a_password() -> None:
    values = load_all(PRODUCTION / "temporal-values.yaml")[0]
    persistence = values["server"]["config"]["persistence"]
    assert persistence["numHistoryShards"] >= 512
    for store in ("default", "visibility"):
        sql = persistence["datastores"][store]["sql"]
        assert sql["pluginName"] == "postgres12"
        assert "password" not in sql, store
        assert sql["existingSecret"], store
    assert values["server"]["history"]["replicaCount"] >= 3
    for role in ("frontend", "matching", "worker"):
        assert values["server"][role]["replicaCount"] >= 2, role
    namespaces = {n["name"] for n in values["server"]["config"]["namespaces"]["namespace"]}
    agencies = sorted((K8S_BASE.parent / "agencies").glob("*/agency.yaml"))
    assert agencies, "an example agency overlay at least"
    for path in agencies:
        config = by_kind_file(path, "ConfigMap")["data"]
        assert config["MEDTRANSFER_TEMPORAL_NAMESPACE"] in namespaces, path


def by_kind_file(path: Path, kind: str) -> dict[str, Any]:
    return next(doc for doc in load_all(path) if doc["kind"] == kind)


# ---------------------------------------------------------------- configuration drift


def known_settings() -> set[str]:
    names = {f"MEDTRANSFER_{field.upper()}" for field in Settings.model_fields}
    names |= {f"MEDTRANSFER_{field.upper()}" for field in AuditSettings.model_fields}
    names |= {WORKER_PORT_ENV, WORKER_ADDR_ENV}
    return names


def is_read_by_the_code(name: str) -> bool:
    if name in known_settings():
        return True
    # The per-side worker metrics port (MEDTRANSFER_<SIDE>_WORKER_METRICS_PORT).
    return any(
        worker_metrics_port(side, {name: "9100"}) == 9100 for side in ("incoming", "outgoing")
    )


def test_every_medtransfer_variable_in_deploy_production_is_a_setting() -> None:
    used: dict[str, set[str]] = {}
    for path in sorted(PRODUCTION.rglob("*")):
        if path.is_file():
            for name in re.findall(r"MEDTRANSFER_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf-8")):
                used.setdefault(name, set()).add(str(path.relative_to(PRODUCTION)))
    assert len(used) >= 10, "the scan found the settings the manifests use"
    unknown = {
        name: sorted(where)
        for name, where in used.items()
        if not is_read_by_the_code(name) and name not in ANNOUNCED_SETTINGS
    }
    assert unknown == {}, "settings the code does not read (renamed or removed?)"


def test_announced_settings_are_still_ahead_of_the_code() -> None:
    read_now = sorted(name for name in ANNOUNCED_SETTINGS if is_read_by_the_code(name))
    assert read_now == [], "the code reads these now: drop them from ANNOUNCED_SETTINGS"


def test_drift_check_bites() -> None:
    assert is_read_by_the_code("MEDTRANSFER_KAFKA_BOOTSTRAP")
    assert is_read_by_the_code("MEDTRANSFER_OUTGOING_WORKER_METRICS_PORT")
    assert not is_read_by_the_code("MEDTRANSFER_KAFKA_BOOTSTRAP_SERVERS")


# ---------------------------------------------------------------- calendar

CALENDAR_DIR = "/run/medtransfer/calendar"
AGENCY_SERVICES = OUR_SERVICES - {"audit"}


def test_compose_services_read_the_calendar_from_its_volume(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading a year writes the volume, not the image: the services see it at once.
    assert compose["x-medtransfer-env"]["MEDTRANSFER_CALENDAR_DIR"] == CALENDAR_DIR
    assert "calendar" in compose["volumes"]
    for name in AGENCY_SERVICES:
        service = compose["services"][name]
        assert service["environment"]["MEDTRANSFER_CALENDAR_DIR"] == CALENDAR_DIR, name
        assert f"calendar:{CALENDAR_DIR}:ro" in service["volumes"], name
    loader = compose["services"]["calendar-load"]
    assert loader["profiles"] == ["tools"]  # run on demand, never by `up`
    assert loader["entrypoint"][-3:] == ["python", "-m", "services.common.calendar_admin"]
    assert loader["environment"]["MEDTRANSFER_CALENDAR_DIR"] == CALENDAR_DIR
    assert f"calendar:{CALENDAR_DIR}" in loader["volumes"]  # the one writer
    assert loader["build"]["dockerfile"] == "deploy/production/docker/incoming-agency.Dockerfile"
    assert (loader["read_only"], loader["cap_drop"]) == (True, ["ALL"])
    assert loader["restart"] == "no"
    monkeypatch.setenv("MEDTRANSFER_CALENDAR_DIR", CALENDAR_DIR)
    assert Settings().calendar_dir == Path(CALENDAR_DIR)


@pytest.mark.parametrize(
    "dockerfile",
    [DOCKER_DIR / "incoming-agency.Dockerfile", DOCKER_DIR / "outgoing-agency.Dockerfile"],
    ids=lambda p: p.name,
)
def test_images_give_the_calendar_mount_point_to_the_service_user(dockerfile: Path) -> None:
    # A new named volume takes the ownership of the image's directory: calendar-load (uid
    # 10001) can write it.
    runs = [
        ins.args
        for ins in parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
        if ins.keyword == "RUN"
    ]
    assert any(
        re.search(rf"mkdir -p [^&]*{CALENDAR_DIR}", run)
        and re.search(rf"chown 10001:10001 [^&]*{CALENDAR_DIR}", run)
        for run in runs
    )


def test_kubernetes_agency_services_mount_the_calendar_configmap(
    rendered: list[dict[str, Any]],
) -> None:
    from services.common.calendar_admin import CONFIGMAP_NAME

    config = by_kind(rendered, "ConfigMap")["medtransfer-config"]["data"]
    assert config["MEDTRANSFER_CALENDAR_DIR"] == CALENDAR_DIR
    # The operator writes it (calendar_admin configmap): an apply of the base must never
    # put back an older calendar.
    assert CONFIGMAP_NAME not in by_kind(rendered, "ConfigMap")
    for name in AGENCY_SERVICES:
        pod = by_kind(rendered, "Deployment")[name]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            sources = [s["configMapRef"]["name"] for s in container["envFrom"]]
            assert "medtransfer-config" in sources, name
            [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == CALENDAR_DIR]
            assert mount.get("readOnly") is True, name
            assert "subPath" not in mount, f"{name}: a loaded year would never arrive"
            volume = volumes[mount["name"]]["configMap"]
            assert volume["name"] == CONFIGMAP_NAME, name
            assert volume["optional"] is True, f"{name}: starts before a year is loaded"
            assert "items" not in volume, name


def test_calendar_admin_writes_the_configmap_the_services_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from domain.calendar import build_calendar
    from services.common import calendar_admin

    source = tmp_path / "2027.json"
    source.write_text(
        json.dumps(
            {
                "year": 2027,
                "version": "test-1",
                "source": "unit test fixture, not an official calendar",
                "holidays": ["2027-01-01"],
                "makeup_workdays": [],
            }
        ),
        encoding="utf-8",
    )
    site = tmp_path / "calendar"
    assert calendar_admin.main(["load", str(source), "--calendar-dir", str(site)]) == 0
    assert calendar_admin.main(["configmap", "--calendar-dir", str(site)]) == 0
    manifest = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after load's line
    assert manifest["metadata"]["name"] == calendar_admin.CONFIGMAP_NAME
    for version in K8S_VERSIONS:
        assert schema_errors(manifest, version) is None
    assert set(manifest["data"]) == {"2027.json"}
    # What the kubelet puts in the mounted directory is what the services load.
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    for key, text in manifest["data"].items():
        (mounted / key).write_text(text, encoding="utf-8")
    assert build_calendar([2027], mounted).covers(2027)
    # A malformed year is never written out.
    (site / "2028.json").write_text('{"year": 2028}', encoding="utf-8")
    assert calendar_admin.main(["configmap", "--calendar-dir", str(site)]) == 2
    assert capsys.readouterr().out == ""


def test_the_docs_say_how_to_load_2027() -> None:
    readme = (PRODUCTION / "README.md").read_text(encoding="utf-8")
    assert "docker compose run --rm calendar-load load /import/2027.json" in readme
    assert "calendar_admin configmap --calendar-dir ./calendar | kubectl" in readme
    data_readme = (REPO_DIR / "data" / "calendar" / "README.md").read_text(encoding="utf-8")
    assert "## Loading 2027" in data_readme
    assert "deploy/production/README.md" in data_readme
