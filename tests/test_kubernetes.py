"""Tests of the Kubernetes manifests and the container build file, all offline."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support_tools import (
    KUBERNETES_DIR,
    REPO,
    RULES_FILE,
    generator_is_current,
    load_rule_groups,
    parse_duration,
    require_module,
    require_tool,
)

DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "container" / "Dockerfile.dockerignore"
GENERATOR = KUBERNETES_DIR / "generate_prometheusrule.py"
CONFIG_FILE = KUBERNETES_DIR / "config.yml"
SECRET_EXAMPLE = KUBERNETES_DIR / "secret.example.yaml"
NAMESPACE = "koodrive-exporter"
METRICS_PORT = 9877
CONFIG_DIR = "/etc/koodrive-exporter"
# The oldest Kubernetes release the manifests are meant for; they are also
# checked against the newest release whose schemas are installed.
OLDEST_KUBERNETES = "1.27"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "NetworkPolicy",
    "ServiceMonitor",
    "PrometheusRule",
}
RULE_KEYS = {
    "record",
    "alert",
    "expr",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
}


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a file."""
    text = path.read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomization() -> dict[str, Any]:
    """The parsed kustomization.yaml."""
    return yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())


def listed_resources() -> list[dict[str, Any]]:
    """Every resource of the files kustomization.yaml lists, as written."""
    documents = []
    for name in kustomization()["resources"]:
        documents += load_documents(KUBERNETES_DIR / name)
    return documents


def resource(kind: str) -> dict[str, Any]:
    """The one listed resource of a kind."""
    (found,) = (doc for doc in listed_resources() if doc["kind"] == kind)
    return found


def container() -> dict[str, Any]:
    """The exporter container of the Deployment."""
    (found,) = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    return found


def built_resources() -> list[dict[str, Any]]:
    """The resources `kubectl kustomize` renders from the folder."""
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def schema_check(document: dict[str, Any]) -> None:
    """Validate a built-in resource against the Kubernetes schemas, strictly."""
    validator = require_module("kubernetes_validate")
    for version in (OLDEST_KUBERNETES, validator.latest_version()):
        validator.validate(document, version, strict=True)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage, its FROM first."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (key, _) in enumerate(instructions) if key == "FROM")
    return instructions[last_from:]


def test_kustomization_lists_every_manifest_and_each_exists() -> None:
    spec = kustomization()
    listed = set(spec["resources"])
    generated = {f for gen in spec["configMapGenerator"] for f in gen["files"]}
    manifests = {p.name for p in KUBERNETES_DIR.glob("*.yaml")}

    for name in listed | generated:
        assert (KUBERNETES_DIR / name).is_file(), name
    assert manifests - listed == {"kustomization.yaml", SECRET_EXAMPLE.name}


def test_kustomize_builds_the_expected_resources_in_one_namespace() -> None:
    built = built_resources()
    kinds = [doc["kind"] for doc in built]

    assert sorted(kinds) == sorted(EXPECTED_KINDS)
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    deployment = next(doc for doc in built if doc["kind"] == "Deployment")
    config_map = next(doc for doc in built if doc["kind"] == "ConfigMap")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    (config_volume,) = (v for v in volumes if "configMap" in v)
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"]["config.yml"] == CONFIG_FILE.read_text()


def test_built_manifests_validate_against_kubernetes_schemas() -> None:
    for doc in built_resources():
        if doc["kind"] not in CUSTOM_KINDS:
            schema_check(doc)


def test_manifest_files_validate_against_kubernetes_schemas() -> None:
    documents = listed_resources() + load_documents(SECRET_EXAMPLE)
    checked = 0
    for doc in documents:
        if doc["kind"] not in CUSTOM_KINDS:
            schema_check(doc)
            checked += 1
    assert checked == 6


def test_schema_validation_rejects_a_misspelt_field() -> None:
    validator = require_module("kubernetes_validate")
    broken = json.loads(json.dumps(resource("Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}

    with pytest.raises(validator.ValidationError):
        schema_check(broken)


def test_prometheusrule_carries_exactly_the_groups_of_rules_yml() -> None:
    rule = resource("PrometheusRule")

    assert rule["spec"]["groups"] == load_rule_groups(RULES_FILE)


def test_prometheusrule_file_is_what_the_generator_writes() -> None:
    result = generator_is_current(GENERATOR)
    assert result.returncode == 0, result.stderr


def test_prometheusrule_has_the_operator_structure() -> None:
    rule = resource("PrometheusRule")

    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"]
    assert set(rule["spec"]) == {"groups"}
    names = [group["name"] for group in rule["spec"]["groups"]]
    assert len(names) == len(set(names))
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for each in group["rules"]:
            assert set(each) <= RULE_KEYS, each
            assert ("record" in each) != ("alert" in each), each
            assert isinstance(each["expr"], str)
            if "for" in each:
                parse_duration(each["for"])
            for mapping in ("labels", "annotations"):
                values = each.get(mapping, {})
                assert all(isinstance(v, str) for v in values.values()), each


def test_servicemonitor_scrapes_the_service_metrics_port_once_a_minute() -> None:
    monitor = resource("ServiceMonitor")
    service = resource("Service")

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    interval = parse_duration(endpoint["interval"])
    timeout = parse_duration(endpoint["scrapeTimeout"])
    config = yaml.safe_load(CONFIG_FILE.read_text())
    assert interval >= config["refresh"]["min_interval_seconds"]
    assert 30 <= timeout < interval
    # The ServiceMonitor's job label is the Service name, which the down alert
    # matches.
    rules = [rule for group in load_rule_groups() for rule in group["rules"]]
    (down,) = (rule for rule in rules if rule.get("alert") == "KooDriveExporterDown")
    assert f'up{{job="{service["metadata"]["name"]}"}}' in down["expr"]


def test_service_and_network_policy_select_the_exporter_pods() -> None:
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = resource("Service")
    policy = resource("NetworkPolicy")

    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["publishNotReadyAddresses"] is True
    (port,) = service["spec"]["ports"]
    assert port["port"] == METRICS_PORT
    assert port["targetPort"] == "metrics"
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {
        p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]
    }
    assert ingress_ports == {"metrics"}
    egress_ports = {
        p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]
    }
    assert egress_ports == {53, 443}


def test_deployment_runs_locked_down() -> None:
    pod = resource("Deployment")["spec"]["template"]["spec"]
    security = container()["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsNonRoot"] is True


def test_deployment_sets_requests_and_limits() -> None:
    resources = container()["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_deployment_probes_health_and_readiness_on_the_metrics_port() -> None:
    exporter = container()
    (port,) = exporter["ports"]

    assert port == {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
    assert exporter["livenessProbe"]["httpGet"] == {
        "path": "/-/healthy",
        "port": "metrics",
    }
    assert exporter["readinessProbe"]["httpGet"] == {
        "path": "/-/ready",
        "port": "metrics",
    }
    assert f"--web.listen-address=:{METRICS_PORT}" in exporter["args"]


def test_deployment_reads_config_from_the_configmap_and_token_from_the_secret() -> None:
    exporter = container()
    volumes = {
        v["name"]: v
        for v in resource("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    mounts = {m["mountPath"]: m for m in exporter["volumeMounts"]}
    config = yaml.safe_load(CONFIG_FILE.read_text())
    (secret,) = load_documents(SECRET_EXAMPLE)

    assert f"--config.file={CONFIG_DIR}/config.yml" in exporter["args"]
    config_volume = volumes[mounts[CONFIG_DIR]["name"]]
    assert config_volume["configMap"]["name"] == "koodrive-exporter-config"
    assert all(mount["readOnly"] for path, mount in mounts.items() if path != "/tmp")

    token_file = Path(config["koodrive"]["auth"]["token_file"])
    secret_mount = mounts[str(token_file.parent)]
    secret_volume = volumes[secret_mount["name"]]
    assert secret_volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert token_file.name in secret["stringData"]
    assert secret["metadata"]["namespace"] == NAMESPACE


def test_configmap_config_is_accepted_by_the_exporter() -> None:
    config = require_module("koodrive_exporter.config")

    settings = config.load_text(CONFIG_FILE.read_text(encoding="utf-8"))

    assert str(settings.koodrive.auth.token_file).startswith("/var/run/secrets/")
    assert settings.refresh.min_interval_seconds == 60


def test_dockerfile_is_multi_stage_and_the_final_stage_copies_the_venv() -> None:
    stages = [args for key, args in dockerfile_instructions() if key == "FROM"]
    final = final_stage()

    assert len(stages) >= 2
    assert stages[0].split()[-2].upper() == "AS"
    builder = stages[0].split()[-1]
    copies = [args for key, args in final if key == "COPY"]
    assert copies and all(args.startswith(f"--from={builder} ") for args in copies)
    assert not any(key == "RUN" for key, _ in final)


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    (user,) = [args for key, args in final_stage() if key == "USER"]
    uid, _, gid = user.partition(":")
    pod = resource("Deployment")["spec"]["template"]["spec"]["securityContext"]

    assert uid.isdigit() and int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)
    assert int(uid) == pod["runAsUser"]


def test_dockerfile_starts_the_exporter_in_exec_form_and_exposes_its_port() -> None:
    final = dict(final_stage())

    assert json.loads(final["ENTRYPOINT"]) == ["koodrive-exporter"]
    assert isinstance(json.loads(final["CMD"]), list)
    assert final["EXPOSE"].split() == [str(METRICS_PORT)]


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignored = [
        line
        for line in DOCKERIGNORE.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    kept = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert ignored[0] == "*"

    builder_copies = [
        args
        for key, args in dockerfile_instructions()
        if key == "COPY" and not args.startswith("--from=")
    ]
    assert builder_copies
    for args in builder_copies:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), f"{source} is missing from the context"
            assert source.rstrip("/") in kept, f"{source} is excluded by dockerignore"
