"""The Kubernetes manifests (infra/k8s) render with ``kubectl kustomize``, every object is valid
against the Kubernetes 1.32 schemas (offline, PyPI ``kubernetes-validate``), and what matters
for running Stratus holds: probes on the ports each role's settings open, the gateway behind a
TCP load balancer, cells reachable only by gateways and the worker, migrations as a Job, no
real secret committed. The Temporal chart's values file is checked against the chart's keys.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from controlplane.config import ApiSettings, SupervisorSettings, WorkerSettings, file_environment
from dataplane.gateway import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
# The kubectl of this machine (v1.32, kustomize built in): validate against its API version.
KUBERNETES_VERSION = "1.32.0"
# Every kustomization: the base, each overlay, the cells' namespace and policy.
KUSTOMIZATIONS = sorted(
    path.parent.relative_to(K8S).as_posix() for path in K8S.rglob("kustomization.yaml")
)
STRATUS_RENDERS = [name for name in KUSTOMIZATIONS if name != "cells"]
ROLE_SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "worker": WorkerSettings,
    "gateway": GatewaySettings,
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}

Obj = dict[str, Any]


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl (with built-in kustomize) is not installed: the manifests are unchecked"
        )
    return kubectl


_RENDERED: dict[str, list[Obj]] = {}


def render(name: str) -> list[Obj]:
    """The objects ``kubectl kustomize infra/k8s/<name>`` prints (rendered once per run)."""
    if name not in _RENDERED:
        output = subprocess.run(
            [_kubectl(), "kustomize", str(K8S / name)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        _RENDERED[name] = [doc for doc in yaml.safe_load_all(output) if doc]
    return _RENDERED[name]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    return found


def component(obj: Obj) -> str:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels["app.kubernetes.io/component"]


def settings_files(objects: list[Obj]) -> dict[str, Obj]:
    """Each role's settings file, from the one settings ConfigMap, parsed."""
    (config_map,) = [
        obj
        for obj in of_kind(objects, "ConfigMap")
        if obj["metadata"]["name"].startswith("stratus-settings")
    ]
    return {
        key.removesuffix(".yaml"): yaml.safe_load(text) for key, text in config_map["data"].items()
    }


def setting(role: str, values: Obj, name: str) -> Any:
    """A setting as the role reads it: the file's value, else the model's default."""
    return values.get(name, ROLE_SETTINGS[role].model_fields[name].default)


def container_port(container: Obj, port: int | str) -> int:
    """A probe's port (a number or a port name) as a port the container declares."""
    declared = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    number = declared.get(port, port) if isinstance(port, str) else port
    assert number in declared.values(), f"{container['name']}: probe port {port} not declared"
    return int(number)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(name: str) -> None:
    """Strict validation: a misspelt or misplaced field fails, not only a wrong type."""
    objects = render(name)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_example_overlay_runs_every_role_and_the_migrations() -> None:
    objects = render("overlays/example")
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {
        "stratus"
    }
    assert {component(obj) for obj in objects if obj["kind"] in WORKLOAD_KINDS} == {
        "api",
        "worker",
        "gateway",
    }
    images = {
        container["image"]
        for obj in objects
        if obj["kind"] in WORKLOAD_KINDS | {"Job"}
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.com/stratus/stratus:0.1.0"}


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_probes_use_the_ports_each_role_s_settings_open(name: str) -> None:
    """Each role runs `stratus serve ROLE` with its file from the settings ConfigMap (valid for
    that role: no unknown key), and its readiness and liveness probes ask the ports those
    settings open, which the container declares."""
    objects = render(name)
    files = settings_files(objects)
    for workload in (obj for obj in objects if obj["kind"] in WORKLOAD_KINDS):
        role = component(workload)
        values = files[role]
        file_environment(ROLE_SETTINGS[role], values)  # raises on a key the role lacks
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["command"] == [
            "stratus",
            "serve",
            role,
            "--settings",
            f"/etc/stratus/settings/{role}.yaml",
        ]
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        if role == "api":
            port = setting(role, values, "api_port")
            assert port == ApiSettings.model_fields["api_port"].default
            assert setting(role, values, "host") == "0.0.0.0"
            assert readiness["httpGet"]["path"] == "/readyz"
            assert liveness["httpGet"]["path"] == "/healthz"
            assert container_port(container, readiness["httpGet"]["port"]) == port
            assert container_port(container, liveness["httpGet"]["port"]) == port
        elif role == "worker":
            port = setting(role, values, "worker_health_port")
            assert port != 0, "the worker's health endpoints are off"
            assert setting(role, values, "worker_health_host") == "0.0.0.0"
            assert readiness["httpGet"]["path"] == "/readyz"
            assert liveness["httpGet"]["path"] == "/healthz"
            assert container_port(container, readiness["httpGet"]["port"]) == port
            assert container_port(container, liveness["httpGet"]["port"]) == port
        else:
            port = setting(role, values, "port")
            api_key_port = setting(role, values, "api_key_port")
            # The ports `stratus up` gives its gateway: what SDK users expect.
            assert port == GatewaySettings.model_fields["port"].default
            assert api_key_port == SupervisorSettings.model_fields["gateway_api_key_port"].default
            assert setting(role, values, "host") == "0.0.0.0"
            assert container_port(container, liveness["tcpSocket"]["port"]) == port
            container_port(container, api_key_port)
            # gRPC health over TLS on the API-key endpoint, trusting the mounted gateway CA.
            probe = " ".join(readiness["exec"]["command"])
            assert f'gateway_serving("127.0.0.1", {api_key_port}, ca_pem=ca)' in probe
            assert f'Path("{values["ca"]}")' in probe
            env = {item["name"]: item for item in container["env"]}
            assert env["STRATUS_GATEWAY_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
                "metadata.name"
            )
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/etc/stratus/settings" in mounts


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_pods_run_as_non_root_on_a_read_only_root_and_are_spread(name: str) -> None:
    objects = render(name)
    pods = [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS | {"Job"}]
    for obj in pods:
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]["memory"]
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for pdb in of_kind(objects, "PodDisruptionBudget")
    }
    for workload in (obj for obj in pods if obj["kind"] in WORKLOAD_KINDS):
        assert component(workload) in budgets
        anti = workload["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        assert anti


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_the_gateway_is_a_tcp_load_balancer_and_the_api_is_internal(name: str) -> None:
    """TLS reaches the gateway unterminated: a layer-4 Service on both of its ports."""
    objects = render(name)
    gateway_settings = settings_files(objects)["gateway"]
    gateway = named(objects, "Service", "stratus-gateway")
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert gateway["spec"]["externalTrafficPolicy"] == "Local"
    assert {port["protocol"] for port in gateway["spec"]["ports"]} == {"TCP"}
    assert {port["port"] for port in gateway["spec"]["ports"]} == {
        setting("gateway", gateway_settings, "port"),
        setting("gateway", gateway_settings, "api_key_port"),
    }
    assert named(objects, "Service", "stratus-api")["spec"]["type"] == "ClusterIP"
    api_url = setting("gateway", gateway_settings, "api_url")
    assert (
        api_url
        == f"http://stratus-api:{setting('api', settings_files(objects)['api'], 'api_port')}"
    )


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_only_gateways_and_the_worker_reach_cell_frontends(name: str) -> None:
    objects = render(name)
    policies = {obj["metadata"]["name"]: obj["spec"] for obj in of_kind(objects, "NetworkPolicy")}
    deny = policies["stratus-default-deny"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    to_cells = [
        (policy_name, spec)
        for policy_name, spec in policies.items()
        for rule in spec.get("egress", [])
        for peer in rule.get("to", [])
        if peer.get("namespaceSelector", {}).get("matchLabels") == {"stratus.dev/cell": "true"}
    ]
    assert [policy_name for policy_name, _ in to_cells] == ["stratus-cells-egress"]
    (expression,) = to_cells[0][1]["podSelector"]["matchExpressions"]
    assert expression["key"] == "app.kubernetes.io/component"
    assert expression["operator"] == "In"
    assert sorted(expression["values"]) == ["gateway", "worker"]
    database = policies["stratus-database-egress"]
    assert sorted(database["podSelector"]["matchExpressions"][0]["values"]) == [
        "api",
        "migrate",
        "worker",
    ]
    assert database["egress"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]


def test_a_cell_namespace_admits_only_stratus_gateways_and_worker() -> None:
    """The cell side (infra/k8s/cells): its namespace carries the label Stratus's egress selects,
    and its frontend admits, from outside the cell, only the gateways and the worker of the
    namespace the example overlay deploys Stratus to."""
    cells = render("cells")
    (namespace,) = of_kind(cells, "Namespace")
    assert namespace["metadata"]["labels"]["stratus.dev/cell"] == "true"
    (policy,) = of_kind(cells, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/component": "frontend"}
    }
    from_stratus, from_cell = policy["spec"]["ingress"]
    (peer,) = from_stratus["from"]
    stratus_namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    assert (
        stratus_namespace
        == named(render("overlays/example"), "Namespace", "stratus")["metadata"]["name"]
    )
    assert sorted(peer["podSelector"]["matchExpressions"][0]["values"]) == ["gateway", "worker"]
    assert from_cell == {"from": [{"podSelector": {}}]}
    # The ports Stratus's egress allows are the ones the cell admits.
    egress = named(render("base"), "NetworkPolicy", "stratus-cells-egress")
    assert egress["spec"]["egress"][0]["ports"] == from_stratus["ports"]


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_migrations_run_as_a_job_and_the_api_does_not_migrate(name: str) -> None:
    objects = render(name)
    (job,) = of_kind(objects, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "stratus",
        "migrate",
        "--settings",
        "/etc/stratus/settings/api.yaml",
    ]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert settings_files(objects)["api"]["migrate_on_start"] is False
    env = {item["name"] for item in container["env"]}
    assert "STRATUS_DATABASE_URL" in env


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_no_secret_holds_a_real_looking_key(name: str) -> None:
    secrets = of_kind(render(name), "Secret")
    assert {secret["metadata"]["name"] for secret in secrets} == {
        "stratus-database",
        "stratus-secrets-key",
        "stratus-operator-key",
        "stratus-gateway-pki",
        "stratus-system-cluster-tls",
    }
    for secret in secrets:
        values = dict(secret.get("stringData", {}))
        values |= {
            key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()
        }
        assert values
        for key, value in values.items():
            assert "REPLACE_ME" in value, f"{secret['metadata']['name']}/{key} is not a placeholder"
            assert "-----BEGIN" not in value
            assert not re.search(r"[0-9a-fA-F]{32,}", value)
            assert "stratus_" not in value


# The value keys of the official Temporal chart (temporalio/helm-charts, charts/temporal
# 1.6.0 values.yaml) that the cell's values file may set; a leaf ``None`` admits any value
# below it (free-form maps, lists, Kubernetes objects).
_SQL = dict.fromkeys(
    [
        "createDatabase",
        "manageSchema",
        "pluginName",
        "driverName",
        "databaseName",
        "connectAddr",
        "connectProtocol",
        "host",
        "port",
        "user",
        "password",
        "existingSecret",
        "secretKey",
        "passwordCommand",
        "maxConns",
        "maxIdleConns",
        "maxConnLifetime",
        "connectAttributes",
        "tls",
    ]
)
_SERVICE = dict.fromkeys(
    [
        "enabled",
        "service",
        "metrics",
        "replicaCount",
        "resources",
        "nodeSelector",
        "tolerations",
        "affinity",
        "additionalEnv",
        "podDisruptionBudget",
        "topologySpreadConstraints",
        "readinessProbe",
        "podLabels",
        "podAnnotations",
    ]
)
_TLS_SECTION = dict.fromkeys(
    ["enabled", "secretName", "mountPath", "requireClientAuth", "serverName"]
)
CHART_KEYS: dict[str, Any] = {
    "server": {
        "enabled": None,
        "image": None,
        "replicaCount": None,
        "resources": None,
        "affinity": None,
        "additionalVolumes": None,
        "additionalVolumeMounts": None,
        "additionalEnv": None,
        "securityContext": None,
        "dynamicConfig": None,
        "tls": {"internode": _TLS_SECTION, "frontend": _TLS_SECTION},
        "config": {
            "logLevel": None,
            "tls": None,
            "authorization": None,
            "persistence": {
                "defaultStore": None,
                "visibilityStore": None,
                "numHistoryShards": None,
                "datastores": {"default": {"sql": _SQL}, "visibility": {"sql": _SQL}},
            },
            "metrics": {"tags": None, "prometheus": {"timerType": None, "listenAddress": None}},
            "namespaces": {"create": None, "namespace": None},
        },
        "frontend": _SERVICE,
        "internalFrontend": _SERVICE,
        "history": _SERVICE,
        "matching": _SERVICE,
        "worker": _SERVICE,
    },
    "admintools": {"enabled": None, "resources": None},
    "web": {"enabled": None, "tls": None},
    "schema": {"useHelmHooks": None, "backoffLimit": None},
}
CELL_VALUES = K8S / "cells" / "temporal-values.yaml"
REGISTER = re.compile(
    r"stratus cell register --name \S+ \\?\s*--frontend \S+:\d+ \\?\s*"
    r"--tls-ca \S+ --tls-cert \S+ --tls-key \S+ \\?\s*--server-name \S+ \\?\s*"
    r"--metrics-url \S+ \\?\s*--max-namespaces \d+ --placement (?:dedicated|shared)"
)


def _unknown_keys(values: Obj, known: dict[str, Any], path: str = "") -> list[str]:
    unknown = []
    for key, value in values.items():
        if key not in known:
            unknown.append(f"{path}{key}")
        elif known[key] is not None:
            assert isinstance(value, dict), f"{path}{key} must be a mapping"
            unknown += _unknown_keys(value, known[key], f"{path}{key}.")
    return unknown


def test_the_cell_values_file_sets_only_the_chart_s_keys_postgres_and_tls() -> None:
    """A cell is the official Temporal chart on PostgreSQL with TLS on every hop and client
    certificates required at the frontend (no Helm here: the file is checked, not rendered)."""
    values = yaml.safe_load(CELL_VALUES.read_text())
    assert _unknown_keys(values, CHART_KEYS) == []
    server = values["server"]
    stores = server["config"]["persistence"]["datastores"]
    for store in ("default", "visibility"):
        sql = stores[store]["sql"]
        assert sql["pluginName"] in {"postgres12", "postgres12_pgx"}
        assert sql["existingSecret"]
        assert "password" not in sql
        assert sql["tls"]["enabled"] is True
    assert server["tls"]["internode"]["enabled"] is True
    frontend_tls = server["tls"]["frontend"]
    assert frontend_tls["enabled"] is True
    assert frontend_tls["requireClientAuth"] is True
    assert frontend_tls["serverName"]
    # The metrics port Stratus's worker may reach (stratus-cells-egress) is the one the
    # servers listen on; cross-namespace commands are off as on local cells.
    listen = server["config"]["metrics"]["prometheus"]["listenAddress"]
    egress = named(render("base"), "NetworkPolicy", "stratus-cells-egress")
    assert int(listen.rsplit(":", 1)[1]) in {
        p["port"] for p in egress["spec"]["egress"][0]["ports"]
    }
    assert server["dynamicConfig"]["system.enableCrossNamespaceCommands"] == [{"value": False}]
    assert values["web"]["enabled"] is False


def test_the_values_file_and_the_deploy_guide_register_the_cell_with_the_cli_s_syntax() -> None:
    text = CELL_VALUES.read_text().replace("\n#  ", " ").replace("\n#", " ")
    assert REGISTER.search(text), "temporal-values.yaml: no `stratus cell register` in the syntax"
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert REGISTER.search(guide), "docs/deploy.md: no `stratus cell register` in the syntax"


@pytest.mark.parametrize("name", STRATUS_RENDERS)
def test_the_api_and_the_worker_reach_the_system_cluster_over_mtls(name: str) -> None:
    """Their settings name the CA, certificate and key files, and each of those files is a key
    of the system-cluster TLS Secret mounted where the settings look."""
    objects = render(name)
    secret = named(objects, "Secret", "stratus-system-cluster-tls")
    for role in ("api", "worker"):
        values = settings_files(objects)[role]
        files = [values[f"system_cell_tls_{part}"] for part in ("ca", "cert", "key")]
        (workload,) = [obj for obj in of_kind(objects, "Deployment") if component(obj) == role]
        pod = workload["spec"]["template"]["spec"]
        (volume,) = [
            v
            for v in pod["volumes"]
            if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]
        ]
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        for path in files:
            directory, _, key = path.rpartition("/")
            assert directory == mount["mountPath"], (role, path)
            assert key in secret["stringData"], (role, key)
