"""The Helm chart in deploy/helm, rendered and linted offline; no cluster and no servers.

Helm itself runs as a library (helm-python-sdk: Helm v4 behind a C ABI), so rendering, linting and
values.schema.json validation are Helm's own. Every rendered manifest is checked against the Kubernetes JSON
schemas of a fixed version (kubernetes-validate, strict: unknown fields fail); the CRDs this chart uses
(FlinkDeployment, Strimzi Kafka and KafkaNodePool, PrometheusRule) against the schemas in the chart's ci/schemas/.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "speech-coach"
CI = CHART / "ci"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "speech-coach", "coach"
VALUES_FILES = sorted(CI.glob("*-values.yaml"))
CRD_SCHEMAS = {
    ("flink.apache.org/v1beta1", "FlinkDeployment"): "flinkdeployment-flink-v1beta1.json",
    ("kafka.strimzi.io/v1beta2", "Kafka"): "kafka-kafka-v1beta2.json",
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): "kafkanodepool-kafka-v1beta2.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
# Setting names that map to secrets: they may only ever come from a secretKeyRef.
SECRET_ENV = {
    "SC_BOT__TOKEN",
    "SC_BOT__WEBHOOK_SECRET",
    "SC_OPENAI__API_KEY",
    "SC_PRIVACY__PSEUDONYM_KEY",
    "SC_S3__ACCESS_KEY",
    "SC_S3__SECRET_KEY",
    "SC_POSTGRES__URL",
    "SC_CLICKHOUSE__URL",
    "SC_KAFKA__SASL_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "CLICKHOUSE_PASSWORD",
}


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def pod_specs(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload, FlinkDeployment pod templates included."""
    specs = []
    for m in manifests:
        name = f"{m['kind']}/{m['metadata']['name']}"
        if m["kind"] in {"Deployment", "StatefulSet", "Job"}:
            specs.append((name, m["spec"]["template"]["spec"]))
        elif m["kind"] == "FlinkDeployment":
            specs.append((name, m["spec"]["podTemplate"]["spec"]))
    return specs


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.fixture(scope="module", params=VALUES_FILES, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(load_values(request.param))


def test_values_files_exist() -> None:
    names = {p.name for p in VALUES_FILES}
    assert {"minimal-values.yaml", "production-values.yaml", "external-services-values.yaml"} <= names


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name)
def test_helm_lint(values_file: Path) -> None:
    report = helm.lint(CHART, load_values(values_file), namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    warnings = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    # The Dagster chart is fetched by `helm dependency update`, which needs the network; see the stub test below.
    assert warnings == ["chart directory is missing these dependencies: dagster"]


def test_every_manifest_matches_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    assert rendered
    for m in rendered:
        where = f"{m['kind']}/{m['metadata']['name']}"
        crd = CRD_SCHEMAS.get((m["apiVersion"], m["kind"]))
        try:
            if crd:
                schema = json.loads((CI / "schemas" / crd).read_text())
                jsonschema.validate(m, schema, cls=jsonschema.Draft202012Validator)
            else:
                kubernetes_validate.validate(m, KUBE_VERSION, strict=True)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            pytest.fail(f"{where}: {path}: {exc.message}")
    # A FlinkDeployment's pod template is a core/v1 Pod that the operator merges into its pods.
    for m in by_kind(rendered, "FlinkDeployment").values():
        kubernetes_validate.validate(m["spec"]["podTemplate"], KUBE_VERSION, strict=True)


def test_pods_run_non_root_with_resources(rendered: list[dict[str, Any]]) -> None:
    specs = pod_specs(rendered)
    assert specs
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec.get("automountServiceAccountToken") is False or name.startswith("FlinkDeployment/"), name
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            if name.startswith("FlinkDeployment/"):
                continue  # the operator sets resources from spec.jobManager/taskManager.resource
            assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], name
    # Our own images run with a read-only root filesystem and an emptyDir /tmp; Flink's and ClickHouse's
    # entrypoints write their configuration at start.
    own = [(name, spec) for name, spec in specs if name.endswith(("-bot", "-ingest", "-migrate"))]
    assert own
    for name, spec in own:
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name


def test_secrets_come_only_from_secret_refs(rendered: list[dict[str, Any]]) -> None:
    assert not [m for m in rendered if m["kind"] == "Secret"], "the chart must never render secret values"
    for m in by_kind(rendered, "ConfigMap").values():
        assert not SECRET_ENV & set(m["data"]), m["metadata"]["name"]
    for name, spec in pod_specs(rendered):
        for c in spec["containers"]:
            for env in c.get("env", []):
                if env["name"] in SECRET_ENV:
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], f"{name}: {env['name']}"


def test_bot_is_a_webhook_deployment_with_probes_and_pdb(rendered: list[dict[str, Any]]) -> None:
    bot = by_kind(rendered, "Deployment")[f"{RELEASE}-bot"]
    container = bot["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SC_BOT__WEBHOOK_URL"]["value"].startswith("https://")
    assert {"SC_BOT__TOKEN", "SC_BOT__WEBHOOK_SECRET"} <= set(env)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pdb = by_kind(rendered, "PodDisruptionBudget")[f"{RELEASE}-bot"]
    assert pdb["spec"]["selector"]["matchLabels"] == bot["spec"]["selector"]["matchLabels"]
    policies = by_kind(rendered, "NetworkPolicy")
    assert f"{RELEASE}-default-deny" in policies and f"{RELEASE}-bot" in policies


def test_ingestion_probes_its_health_server_on_the_pod_ip(rendered: list[dict[str, Any]]) -> None:
    ingest = by_kind(rendered, "Deployment")[f"{RELEASE}-ingest"]
    container = ingest["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = int(env["SC_WAREHOUSE__INGEST_HEALTH_PORT"])
    assert env["SC_TELEMETRY__BIND_HOST"] == "0.0.0.0"
    assert container["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert f"{RELEASE}-ingest" in by_kind(rendered, "NetworkPolicy")


def test_flink_jobs_run_pyflink_in_application_mode_with_s3_state(rendered: list[dict[str, Any]]) -> None:
    jobs = by_kind(rendered, "FlinkDeployment")
    assert f"{RELEASE}-answers" in jobs
    for name, m in jobs.items():
        spec = m["spec"]
        assert spec["flinkVersion"].startswith("v2_")
        assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        args = spec["job"]["args"]
        assert re.fullmatch(r"flink_jobs\.\w+", args[args.index("-pym") + 1]), name
        conf = spec["flinkConfiguration"]
        state_dirs = (
            "execution.checkpointing.dir",
            "execution.checkpointing.savepoint-dir",
            "high-availability.storageDir",
        )
        for key in state_dirs:
            assert conf[key].startswith("s3://"), f"{name}: {key}"
        assert len(name) <= 45, "Flink cluster ids are at most 45 characters"


def test_monitoring_ships_the_alert_rules_dashboards_and_flink_reporter() -> None:
    manifests = render(load_values(CI / "production-values.yaml"))
    (rule,) = by_kind(manifests, "PrometheusRule").values()
    shipped = yaml.safe_load((CHART / "alerts" / "speech-coach.rules.yaml").read_text())["groups"]
    assert rule["spec"]["groups"] == shipped  # the rule file itself, not a copy that can drift
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    boards = {
        key: json.loads(value)
        for m in by_kind(manifests, "ConfigMap").values()
        if m["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key, value in m["data"].items()
    }
    assert set(boards) == {p.name for p in (CHART / "dashboards").glob("*.json")} and len(boards) == 3
    assert all(board["panels"] for board in boards.values())
    for name, m in by_kind(manifests, "FlinkDeployment").items():
        conf = m["spec"]["flinkConfiguration"]
        assert conf["metrics.reporter.prom.factory.class"].endswith("PrometheusReporterFactory"), name
        assert conf["metrics.reporter.prom.port"] == "9249"
        (container,) = m["spec"]["podTemplate"]["spec"]["containers"]
        assert {"name": "metrics", "containerPort": 9249, "protocol": "TCP"} in container["ports"]
        policy = by_kind(manifests, "NetworkPolicy")[f"{name.replace(RELEASE, RELEASE + '-flink', 1)}"]
        assert any(p.get("port") == 9249 for rule in policy["spec"]["ingress"] for p in rule.get("ports", []))
    # Off by default: a cluster without the Prometheus Operator has no PrometheusRule kind.
    minimal = render(load_values(CI / "minimal-values.yaml"))
    assert not by_kind(minimal, "PrometheusRule")


def test_dagster_dependency_is_declared_and_wired() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (dep,) = chart["dependencies"]
    # the Dagster image's group
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dagster"]
    assert f"dagster=={dep['version']}" in pinned, "the Dagster chart version equals the dagster release"
    assert dep["name"] == "dagster" and dep["repository"] == "https://dagster-io.github.io/helm"
    assert dep["condition"] == "dagster.enabled"

    values = load_values(CHART / "values.yaml")
    manifests = render(load_values(CI / "minimal-values.yaml"))
    configmap = next(iter(by_kind(manifests, "ConfigMap")))
    dagster = values["dagster"]
    (code,) = dagster["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["--module-name", "orchestration.definitions"]
    assert (ROOT / "orchestration" / "definitions.py").is_file()
    assert code["image"]["repository"] == f"{values['image']['registry']}/speech-coach-dagster"
    assert code["image"]["tag"] == chart["appVersion"]
    launcher = dagster["runLauncher"]["config"]["k8sRunLauncher"]
    for holder in (code, launcher):
        assert holder["envConfigMaps"] == [{"name": configmap}]
    # Secrets: the code location's own list (test_dagster_gets_only_the_secrets_its_code_reads), which its run
    # pods inherit; never a whole Secret.
    assert "envSecrets" not in code and "envSecrets" not in launcher
    assert code["includeConfigInLaunchedRuns"] == {"enabled": True}
    # PostgreSQL storage on the external server, with a password from a Secret the operator creates.
    assert dagster["postgresql"]["enabled"] is False and dagster["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


def test_dagster_condition_and_strict_lint_with_a_stub_dependency(tmp_path: Path) -> None:
    """Without network the real chart cannot be fetched; a stub named like it proves the condition and lints clean."""
    chart_dir = tmp_path / "speech-coach"
    shutil.copytree(CHART, chart_dir)
    stub = chart_dir / "charts" / "dagster"
    (stub / "templates").mkdir(parents=True)
    (stub / "Chart.yaml").write_text("apiVersion: v2\nname: dagster\nversion: 1.13.27\n")
    (stub / "templates" / "values.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dagster-values\n"
        "data:\n  values: {{ toJson .Values | quote }}\n"
    )
    values = load_values(CI / "production-values.yaml")
    report = helm.lint(chart_dir, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == [], report

    with helm.Chart.load(chart_dir) as chart:
        on = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
        off = chart.render(values={**values, "dagster": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)
    assert "speech-coach/charts/dagster/templates/values.yaml" in on
    assert not any("charts/dagster" in path for path in off)
    seen = json.loads(yaml.safe_load(on["speech-coach/charts/dagster/templates/values.yaml"])["data"]["values"])
    assert seen["postgresql"]["postgresqlHost"] == "coach-db.databases.svc"
    assert seen["global"]["postgresqlSecretName"] == "speech-coach-dagster-postgresql"


ICMP_DNS = {"to": [], "ports": [{"port": 53, "protocol": "ICMP"}]}
BAD_VALUES = [
    ({"secrets": {"botToken": "123456:plain-token"}}, "/secrets/botToken", "want object"),
    ({"secrets": {"existingSecret": ""}}, "/secrets/existingSecret", "pattern"),
    ({"bot": {"token": "123456:plain-token"}}, "/bot", "'token' not allowed"),
    ({"extraEnv": {"SC_OPENAI__API_KEY": "sk-plain"}}, "/extraEnv/SC_OPENAI__API_KEY", "false schema"),
    ({"extraEnv": {"LOG_LEVEL": "DEBUG"}}, "/extraEnv", "'LOG_LEVEL' not allowed"),
    ({"bot": {"webhookUrl": "http://coach.example.org/hook"}}, "/bot/webhookUrl", "pattern"),
    ({"bot": {"webhookUrl": ""}}, "/bot/webhookUrl", "minLength"),
    ({"kafka": {"bootstrapServers": ""}}, "/kafka/bootstrapServers", "minLength"),
    ({"kafka": {"bootstrapServers": "kafka"}}, "/kafka/bootstrapServers", "pattern"),
    ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol", "one of"),
    ({"s3": {"endpointUrl": "minio:9000"}}, "/s3/endpointUrl", "pattern"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", "one of"),
    ({"image": {"tag": "latest version"}}, "/image/tag", "pattern"),
    ({"bot": {"replicas": 0}}, "/bot/replicas", "minimum"),
    # null deletes a default in Helm, so this removes the requests.
    ({"bot": {"resources": {"requests": None}}}, "/bot/resources", "missing property 'requests'"),
    ({"bot": {"resources": {"requests": {"memory": "lots"}}}}, "/bot/resources/requests/memory", "pattern"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot", "true"),
    ({"containerSecurityContext": {"privileged": True}}, "/containerSecurityContext/privileged", "false"),
    ({"flink": {"version": "v1_20"}}, "/flink/version", "one of"),
    ({"flink": {"upgradeMode": "yolo"}}, "/flink/upgradeMode", "one of"),
    ({"flink": {"jobs": {"answers": {"parallelism": 0}}}}, "/flink/jobs/answers/parallelism", "minimum"),
    ({"flink": {"jobs": {"answers": {"secrets": ["botToken"]}}}}, "'secrets' not allowed", ""),
    ({"kafka": {"saslMechanism": "PLAIN"}}, "/kafka/securityProtocol", "one of"),
    ({"kafka": {"caCert": {"secretName": "a", "configMapName": "b"}}}, "/kafka/caCert", "not"),
    ({"networkPolicy": {"egress": {"dns": ICMP_DNS}}}, "/networkPolicy/egress/dns/ports/0/protocol", "one of"),
    ({"networkPolicy": {"monitoringNamespace": "Monitoring"}}, "/networkPolicy/monitoringNamespace", "pattern"),
    ({"dagster": {"enabled": "yes"}}, "/dagster/enabled", "want boolean"),
    ({"unknownKey": 1}, "additional properties 'unknownKey' not allowed", ""),
]


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) and value else value
    return out


@pytest.mark.parametrize(("override", "path", "reason"), BAD_VALUES, ids=[p for _, p, _ in BAD_VALUES])
def test_bad_values_are_rejected_naming_the_path(override: dict[str, Any], path: str, reason: str) -> None:
    values = merge(load_values(CI / "minimal-values.yaml"), override)
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    message = str(caught.value)
    assert path in message and reason in message, message


def test_good_values_stay_accepted() -> None:
    # The schema is not just strict: reasonable variations of the minimal install pass.
    minimal = load_values(CI / "minimal-values.yaml")
    render(merge(minimal, {"bot": {"enabled": False, "webhookUrl": ""}}))
    render(merge(minimal, {"kafka": {"bootstrapServers": "", "strimzi": {"enabled": True}}}))


# --- least privilege --------------------------------------------------------------------------------------------

# The secret variables each workload's code reads (bot/, warehouse/, flink_jobs/, orchestration/; the chart's list
# is "speech-coach.runtimeSecrets" in _helpers.tpl). The Flink jobs' S3 keys also reach Flink as AWS_* (checkpoints).
SECRETS_READ = {
    "Deployment/speech-coach-bot": {"SC_BOT__TOKEN", "SC_BOT__WEBHOOK_SECRET", "SC_PRIVACY__PSEUDONYM_KEY",
                                    "SC_S3__ACCESS_KEY", "SC_S3__SECRET_KEY", "SC_POSTGRES__URL"},
    "Deployment/speech-coach-ingest": {"SC_PRIVACY__PSEUDONYM_KEY", "SC_CLICKHOUSE__URL"},
    "Job/speech-coach-migrate": {"SC_POSTGRES__URL", "SC_CLICKHOUSE__URL"},
    "FlinkDeployment/speech-coach-answers": {"SC_S3__ACCESS_KEY", "SC_S3__SECRET_KEY", "AWS_ACCESS_KEY_ID",
                                             "AWS_SECRET_ACCESS_KEY"},
    "FlinkDeployment/speech-coach-metrics": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "StatefulSet/speech-coach-clickhouse": {"CLICKHOUSE_PASSWORD"},
    "dagster": {"SC_PRIVACY__PSEUDONYM_KEY", "SC_S3__ACCESS_KEY", "SC_S3__SECRET_KEY", "SC_POSTGRES__URL",
                "SC_CLICKHOUSE__URL"},
}  # fmt: skip
KAFKA_CLIENTS = {"Deployment/speech-coach-bot", "Deployment/speech-coach-ingest",
                 "FlinkDeployment/speech-coach-answers", "FlinkDeployment/speech-coach-metrics", "dagster"}  # fmt: skip
KAFKA_CA = "/etc/speech-coach/kafka-ca/ca.crt"


def secret_env(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each secret-derived variable of a pod's containers, with its secretKeyRef."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for c in spec["containers"] + spec.get("initContainers", [])
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name)
def test_each_workload_gets_exactly_the_secrets_its_code_reads(values_file: Path) -> None:
    values = load_values(values_file)
    sasl = bool(values.get("kafka", {}).get("saslMechanism"))
    openai = any(values.get("openai", {}).get(k) for k in ("transcription", "feedback"))
    specs = pod_specs(render(values))
    assert {"Deployment/speech-coach-bot", "Job/speech-coach-migrate", "FlinkDeployment/speech-coach-answers"} <= {
        name for name, _ in specs
    }
    for name, spec in specs:
        wanted = set(SECRETS_READ[name])
        if sasl and name in KAFKA_CLIENTS:
            wanted.add("SC_KAFKA__SASL_PASSWORD")
        if openai and name == "FlinkDeployment/speech-coach-answers":
            wanted.add("SC_OPENAI__API_KEY")
        assert set(secret_env(spec)) == wanted, name
        # No whole Secret as environment or volume: only the Kafka CA certificate is mounted from one.
        for c in spec["containers"]:
            assert not [f for f in c.get("envFrom", []) if "secretRef" in f], name
        mounted = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        assert mounted <= {values.get("kafka", {}).get("caCert", {}).get("secretName")}, name
    answers = secret_env(dict(specs)["FlinkDeployment/speech-coach-answers"])
    assert not {"SC_PRIVACY__PSEUDONYM_KEY", "SC_POSTGRES__URL", "SC_BOT__TOKEN", "SC_CLICKHOUSE__URL"} & set(answers)
    bot = secret_env(dict(specs)["Deployment/speech-coach-bot"])
    assert not {"SC_OPENAI__API_KEY", "SC_CLICKHOUSE__URL"} & set(bot)


def test_the_answer_job_gets_the_openai_key_and_egress_only_with_an_openai_engine() -> None:
    minimal = load_values(CI / "minimal-values.yaml")
    for engines, wanted in (({}, False), ({"feedback": True}, True), ({"transcription": True}, True)):
        manifests = render(merge(minimal, {"openai": engines}))
        job = by_kind(manifests, "FlinkDeployment")[f"{RELEASE}-answers"]
        (container,) = job["spec"]["podTemplate"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert ("SC_OPENAI__API_KEY" in env) is wanted, engines
        assert env["SC_FEEDBACK__ENGINE"] == ("openai" if engines.get("feedback") else "offline")
        assert env["SC_TRANSCRIPTION__ENGINE"] == ("openai" if engines.get("transcription") else "offline")
        egress = by_kind(manifests, "NetworkPolicy")[f"{RELEASE}-flink-answers-egress"]["spec"]["egress"]
        public = [r for r in egress if {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}} in r.get("to", [])]
        assert bool(public) is wanted, engines
        # The metrics job never reaches OpenAI.
        metrics = by_kind(manifests, "NetworkPolicy")[f"{RELEASE}-flink-metrics-egress"]["spec"]["egress"]
        assert not any("ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0" for r in metrics
                       for peer in r.get("to", []))  # fmt: skip


def test_dagster_gets_only_the_secrets_its_code_reads() -> None:
    """The Dagster values cannot be rendered offline (the chart is not here): its code location's env is checked as
    written, and the Dagster chart passes a list `env` on to the run pods (includeConfigInLaunchedRuns)."""
    values = load_values(CHART / "values.yaml")
    dagster = values["dagster"]
    (code,) = dagster["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in code["env"]}
    assert set(env) == SECRETS_READ["dagster"] | {"SC_KAFKA__SASL_PASSWORD"}
    refs = {v: values["secrets"][k] for k, v in yaml.safe_load(
        helm_define("speech-coach.secretVars")).items()}  # fmt: skip
    for name, ref in env.items():
        assert ref["name"] == values["secrets"]["existingSecret"] and ref["key"] == refs[name]["key"], name
        assert ref.get("optional", False) == refs[name].get("optional", False), name
    # No whole Secret anywhere in the Dagster values: not for the code server, the runs, the webserver or the daemon.
    assert values["secrets"]["existingSecret"] not in yaml.safe_dump({k: v for k, v in dagster.items()
                                                                      if k != "dagster-user-deployments"})  # fmt: skip
    assert "envSecrets" not in yaml.safe_dump(dagster)


def helm_define(name: str) -> str:
    """The body of a `define` in _helpers.tpl that holds plain YAML (no template actions)."""
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    body = re.search(r'\{\{- define "' + re.escape(name) + r'" -\}\}\n(.*?)\{\{- end \}\}', text, re.S)
    assert body, name
    return body.group(1)


def to_cel(value: Any) -> Any:
    """JSON values as CEL values (celpy's own json_to_cel makes booleans integers); CEL values stay as they are."""
    from celpy import celtypes

    if isinstance(value, celtypes.MapType | celtypes.ListType):
        return value
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list):
        return celtypes.ListType([to_cel(v) for v in value])
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): to_cel(v) for k, v in value.items()})
    return value


def cel(expression: str, **activation: Any) -> Any:
    """A CEL expression evaluated as the API server evaluates a policy's (cel-python: standard CEL and macros)."""
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(expression)).evaluate({k: to_cel(v) for k, v in activation.items()})


def admitted(policy: dict[str, Any], request: dict[str, Any], obj: Any, old: Any = None) -> list[str]:
    """What a ValidatingAdmissionPolicy says to a request: the messages of the validations that fail, [] if admitted,
    ["not matched"] when its match conditions leave the request alone."""
    spec = policy["spec"]
    ctx: dict[str, Any] = {"request": request, "object": obj, "oldObject": old}
    if not all(cel(c["expression"], **ctx) for c in spec.get("matchConditions", [])):
        return ["not matched"]
    ctx["variables"] = {}
    for variable in spec.get("variables", []):
        ctx["variables"][variable["name"]] = cel(variable["expression"], **ctx)
    return [v["message"] for v in spec["validations"] if not cel(v["expression"], **ctx)]


FLINK_SA = f"system:serviceaccount:{NAMESPACE}:flink"
# The bot's token, which a pod of the Flink account must not read.
STEAL = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "speech-coach-secrets", "key": "SC_BOT__TOKEN"}}}


def taskmanager_pod(job: dict[str, Any]) -> dict[str, Any]:
    """A TaskManager pod as the JobManager creates it: the job's pod template with Flink's image, account and
    configuration volume, after the ServiceAccount admission plugin added the token volume."""
    pod = json.loads(json.dumps(job["spec"]["podTemplate"]))
    spec = pod["spec"]
    spec["serviceAccountName"] = job["spec"]["serviceAccount"]
    (container,) = spec["containers"]
    container["image"] = job["spec"]["image"]
    container["volumeMounts"].append({"name": "flink-config-volume", "mountPath": "/opt/flink/conf"})
    spec["volumes"] += [
        {"name": "flink-config-volume", "configMap": {"name": f"flink-config-{job['metadata']['name']}"}},
        {"name": "kube-api-access-x1", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ]}},
    ]  # fmt: skip
    return pod


@pytest.mark.parametrize("values_file", [CI / "minimal-values.yaml", CI / "external-services-values.yaml"],
                         ids=lambda p: p.name)  # fmt: skip
def test_the_flink_account_can_create_only_flink_pods_with_the_jobs_own_secrets(values_file: Path) -> None:
    manifests = render(load_values(values_file))
    (role,) = by_kind(manifests, "Role").values()
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r for r in role["rules"]}
    assert set(rules[(("",), ("pods",))]["verbs"]) == {"get", "list", "watch", "create", "delete"}  # no update, patch
    assert not any("secrets" in r["resources"] or "*" in r["verbs"] + r["resources"] for r in role["rules"])
    jobs = by_kind(manifests, "FlinkDeployment")
    for resource in ("deployments", "deployments/finalizers"):
        assert sorted(rules[(("apps",), (resource,))]["resourceNames"]) == sorted(jobs)  # its own Deployments only
    policies = by_kind(manifests, "ValidatingAdmissionPolicy")
    bindings = by_kind(manifests, "ValidatingAdmissionPolicyBinding")
    assert set(policies) == set(bindings)
    for name, binding in bindings.items():
        assert binding["spec"]["policyName"] == name and binding["spec"]["validationActions"] == ["Deny"]
        assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": NAMESPACE}  # fmt: skip
    pods = next(p for n, p in policies.items() if n.endswith("-pods"))
    request = {"userInfo": {"username": FLINK_SA}, "operation": "CREATE"}
    for job in jobs.values():
        pod = taskmanager_pod(job)
        assert admitted(pods, request, pod) == [], job["metadata"]["name"]

        def changed(edit: Any, pod: dict[str, Any] = pod) -> list[str]:
            bad = json.loads(json.dumps(pod))
            edit(bad["spec"], bad["spec"]["containers"][0])
            return admitted(pods, request, bad)

        assert changed(lambda s, c: c.update(image="attacker/image:1")) == [
            "pods of the Flink service account run the Flink image only"]  # fmt: skip
        assert changed(lambda s, c: c["env"].append(STEAL)) == [
            "pods of the Flink service account read no Secret keys but the Flink jobs' own"]  # fmt: skip
        assert changed(lambda s, c: s["initContainers"].append(dict(c, env=[STEAL])) if "initContainers" in s
                       else s.update(initContainers=[dict(c, name="init", env=[STEAL])])) != []  # fmt: skip
        assert changed(lambda s, c: c.update(envFrom=[{"secretRef": {"name": "speech-coach-secrets"}}])) == [
            "pods of the Flink service account take no whole Secret as environment"]  # fmt: skip
        assert changed(lambda s, c: s["volumes"].append({"name": "s", "secret": {"secretName": "coach-telegram"}}))
        assert changed(lambda s, c: s["volumes"].append(
            {"name": "p", "projected": {"sources": [{"secret": {"name": "speech-coach-secrets"}}]}}))  # fmt: skip
        assert changed(lambda s, c: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}))
        assert changed(lambda s, c: s.update(serviceAccountName="speech-coach-dagster"))
        assert changed(lambda s, c: s.update(hostNetwork=True))
        assert changed(lambda s, c: c.update(securityContext={"privileged": True}))
    # Pods of anyone else (the operator, the Deployment controller) are not this policy's business.
    other = {"userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"}, "operation": "CREATE"}
    assert admitted(pods, other, {"spec": {"containers": [{"image": "any"}]}}) == ["not matched"]
    # ConfigMaps: only the jobs' HA ConfigMaps, never the platform's settings.
    configmaps = next(p for n, p in policies.items() if n.endswith("-configmaps"))
    for operation in ("CREATE", "UPDATE", "DELETE"):
        req = {"userInfo": {"username": FLINK_SA}, "operation": operation}
        for name, ok in ((f"{RELEASE}-answers-cluster-config-map", True), (f"{RELEASE}-config", False)):
            obj = {"metadata": {"name": name}}
            args = (None, obj) if operation == "DELETE" else (obj, None)
            assert (admitted(configmaps, req, *args) == []) is ok, (operation, name)


def test_the_admission_policy_can_be_turned_off() -> None:
    values = merge(load_values(CI / "minimal-values.yaml"), {"flink": {"admissionPolicy": {"enabled": False}}})
    assert not by_kind(render(values), "ValidatingAdmissionPolicy")


PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def egress_of(manifests: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return by_kind(manifests, "NetworkPolicy")[f"{RELEASE}-{component}-egress"]["spec"]["egress"]


def ports_of(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for r in rules for p in r.get("ports", [])}


def test_egress_lets_each_workload_reach_only_what_it_uses() -> None:
    manifests = render(load_values(CI / "minimal-values.yaml"))  # Kafka :9092, S3 :9000 (http://minio...:9000)
    deny = by_kind(manifests, "NetworkPolicy")[f"{RELEASE}-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "egress" not in deny  # nothing, unless allowed below
    assert ports_of(egress_of(manifests, "bot")) == {53, 9092, 5432, 9000, 443}
    assert ports_of(egress_of(manifests, "ingest")) == {53, 9092, 9000}  # ClickHouse native; no S3, no PostgreSQL
    assert ports_of(egress_of(manifests, "migrations")) == {53, 5432, 9000}  # no Kafka
    for job in ("answers", "metrics"):
        rules = egress_of(manifests, f"flink-{job}")
        # Its own JobManager and TaskManagers, any port; everything else by port: DNS, Kafka, S3, the API server.
        (own,) = [r for r in rules if "ports" not in r]
        assert own["to"] == [{"podSelector": {"matchLabels": {"app": f"{RELEASE}-{job}"}}}]
        assert ports_of(rules) == {53, 9092, 9000, 443, 6443}
    # Every rule names its ports; DNS goes to the cluster DNS only; Telegram's 443 only to Telegram's ranges.
    for m in by_kind(manifests, "NetworkPolicy").values():
        for rule in m["spec"].get("egress", []):
            assert rule.get("ports") or rule.get("to"), m["metadata"]["name"]
    dns = [r for r in egress_of(manifests, "bot") if {"port": 53, "protocol": "UDP"} in r["ports"]]
    assert dns[0]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    (telegram,) = [r for r in egress_of(manifests, "bot") if r.get("to") and "ipBlock" in r["to"][0]]
    assert {"ipBlock": {"cidr": "149.154.160.0/20"}} in telegram["to"] and telegram["ports"] == [
        {"port": 443, "protocol": "TCP"}]  # fmt: skip
    assert all(peer["ipBlock"]["cidr"] != "0.0.0.0/0" for peer in telegram["to"])
    # In-cluster Kafka and ClickHouse: their pods, not any address.
    inside = render(load_values(CI / "in-cluster-values.yaml"))
    rules = egress_of(inside, "ingest")
    assert {"podSelector": {"matchLabels": {"strimzi.io/cluster": f"{RELEASE}-kafka"}}} in [
        peer for r in rules for peer in r.get("to", [])]  # fmt: skip
    selectors = [peer["podSelector"]["matchLabels"] for r in rules for peer in r.get("to", []) if "podSelector" in peer]
    assert any(labels.get("app.kubernetes.io/component") == "clickhouse" for labels in selectors), selectors
    # Configured destinations replace the defaults; egress control can be turned off.
    external = render(load_values(CI / "external-services-values.yaml"))
    assert {"ipBlock": {"cidr": "10.20.0.0/24"}} in [p for r in egress_of(external, "bot") for p in r.get("to", [])]
    assert ports_of(egress_of(external, "bot")) == {53, 9096, 5432, 443}
    off = render(merge(load_values(CI / "minimal-values.yaml"), {"networkPolicy": {"egress": {"enabled": False}}}))
    assert by_kind(off, "NetworkPolicy")[f"{RELEASE}-default-deny"]["spec"]["policyTypes"] == ["Ingress"]
    assert not [n for n in by_kind(off, "NetworkPolicy") if n.endswith("-egress")]


def test_kafka_tls_and_sasl_reach_every_kafka_client() -> None:
    manifests = render(load_values(CI / "external-services-values.yaml"))
    (config,) = [m["data"] for m in by_kind(manifests, "ConfigMap").values()]
    assert config["SC_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL" and config["SC_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["SC_KAFKA__SASL_USERNAME"] == "speech-coach"
    clients = 0
    for name, spec in pod_specs(manifests):
        (container,) = spec["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        if name in KAFKA_CLIENTS:
            clients += 1
            assert env["SC_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "coach-kafka-user", "key": "password", "optional": True}  # fmt: skip
            assert env["SC_KAFKA__SSL_CA_LOCATION"]["value"] == KAFKA_CA
            mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-ca")
            assert KAFKA_CA.startswith(mount["mountPath"] + "/") and mount["readOnly"] is True
            volume = next(v for v in spec["volumes"] if v["name"] == "kafka-ca")
            assert volume["secret"] == {"secretName": "coach-kafka-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        else:
            assert not {"SC_KAFKA__SASL_PASSWORD", "SC_KAFKA__SSL_CA_LOCATION"} & set(env), name
    assert clients == 4
    # Without TLS settings nothing of it is rendered; the local stack stays PLAINTEXT.
    minimal = render(load_values(CI / "minimal-values.yaml"))
    assert by_kind(minimal, "ConfigMap")[f"{RELEASE}-config"]["data"]["SC_KAFKA__SECURITY_PROTOCOL"] == "PLAINTEXT"
    for name, spec in pod_specs(minimal):
        names = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
        assert not {"SC_KAFKA__SASL_PASSWORD", "SC_KAFKA__SSL_CA_LOCATION"} & names, name


# --- images -----------------------------------------------------------------------------------------------------

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}  # fmt: skip


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines if ln and not ln.startswith("#")]


def test_dockerfile_parses_and_builds_every_runtime_target() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    unknown = [i for i, _ in instructions if i not in INSTRUCTIONS]
    assert not unknown, unknown
    stages = {}
    for inst, args in instructions:
        if inst == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, args
            stages[m.group(2)] = m.group(1)
    # Every image the chart references is a target of the Dockerfile.
    manifests = render(load_values(CI / "production-values.yaml"))
    images = {c.get("image", "") for _, s in pod_specs(manifests) for c in s["containers"]}
    images |= {m["spec"]["image"] for m in by_kind(manifests, "FlinkDeployment").values()}
    targets = {m.group(1) for i in images if (m := re.search(r"/speech-coach-([a-z]+)[@:]", i))}
    targets.add("dagster")
    assert targets == {"bot", "ingest", "flink", "dagster"}
    assert targets <= set(stages), f"missing targets: {targets - set(stages)}"


def test_dockerfile_copies_only_existing_paths() -> None:
    for inst, args in dockerfile_instructions(DOCKERFILE):
        if inst != "COPY" or "--from=" in args:
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def dockerfile_stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions, by stage name."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for inst, args in dockerfile_instructions(path):
        if inst == "FROM":
            current = stages.setdefault(args.split()[-1] if " AS " in args.upper() else args, [])
        current.append((inst, args))
    return stages


IMAGE_TARGETS = ("bot", "ingest", "dagster", "flink")


@pytest.mark.parametrize("target", IMAGE_TARGETS)
def test_each_image_installs_only_its_locked_set(target: str) -> None:
    """The runtime's requirements/<target>.lock (tests/test_image_sets.py checks what is in it), then the wheel."""
    steps = dockerfile_stages(DOCKERFILE)[target]
    text = "\n".join(args for _, args in steps)
    assert ("COPY", f"requirements/{target}.lock ./") in steps, text
    syncs = [args for inst, args in steps if inst == "RUN" and "uv pip sync" in args]
    assert len(syncs) == 1 and syncs[0].rstrip().endswith(f"{target}.lock"), syncs
    assert "--require-hashes" in syncs[0]
    # Nothing else resolves dependencies: the wheel goes in without its own.
    installs = [args for inst, args in steps if inst == "RUN" and "uv pip install" in args]
    assert installs and all("--no-deps" in a or "pip uninstall" in a for a in installs), installs
    assert "COPY --from=wheel /wheels ./wheels" in [f"{i} {a}" for i, a in steps]


def test_no_image_installs_the_dev_environment() -> None:
    for stage, steps in dockerfile_stages(DOCKERFILE).items():
        for inst, args in steps:
            assert "requirements.lock" not in args, f"stage {stage}: {inst} {args}"


def python_modules_run(command: list[str]) -> list[str]:
    """The modules a container command runs with `python -m`, through `sh -c` too."""
    words = [w for part in command for w in part.split()]
    return [b for a, b in itertools.pairwise(words) if a == "-m"]


def test_chart_and_images_run_module_entry_points() -> None:
    """The `speech-coach` CLI is the local platform's (control/, with the local stack's set); images run modules."""
    manifests = render(load_values(CI / "production-values.yaml"))
    commands = {
        name: c["command"]
        for name, spec in pod_specs(manifests)
        if not name.startswith("FlinkDeployment/")
        for c in spec["containers"]
        if "/speech-coach-" in c["image"]
    }
    for _, steps in dockerfile_stages(DOCKERFILE).items():
        commands |= {f"CMD {a}": json.loads(a) for i, a in steps if i == "CMD"}
    assert {"Deployment/speech-coach-ingest", "Job/speech-coach-migrate"} <= set(commands)
    modules = []
    for name, command in commands.items():
        assert "speech-coach" not in " ".join(command).split(), f"{name} runs the speech-coach CLI: {command}"
        modules += python_modules_run(command)
    assert {"bot", "warehouse", "speech_coach.db"} <= set(modules)
    for module in modules:
        assert (ROOT / module.replace(".", "/") / "__main__.py").is_file(), f"python -m {module}: no __main__.py"


def test_flink_image_paths_match_the_chart() -> None:
    text = DOCKERFILE.read_text()
    jobs = by_kind(render(load_values(CI / "minimal-values.yaml")), "FlinkDeployment")
    for m in jobs.values():
        assert m["spec"]["job"]["jarURI"] == "local:///opt/flink/opt/flink-python.jar"
        assert "/opt/flink/opt/flink-python.jar" in text
        assert m["spec"]["flinkConfiguration"]["python.executable"] == "/opt/venv/bin/python"
        env = {e["name"]: e.get("value") for e in m["spec"]["podTemplate"]["spec"]["containers"][0]["env"]}
        assert f"SC_FLINK__LIB_DIR={env['SC_FLINK__LIB_DIR']}" in text


def test_flink_job_modules_exist() -> None:
    modules = [job["module"] for job in load_values(CHART / "values.yaml")["flink"]["jobs"].values()]
    # `-pym` runs `python -m`: a package needs its __main__.py
    missing = [m for m in modules if not (ROOT / m.replace(".", "/") / "__main__.py").is_file()]
    assert modules and not missing


# --- docs -------------------------------------------------------------------------------------------------------


def test_every_rendered_setting_is_known_or_listed_for_reconciliation() -> None:
    known = set(re.findall(r"^#?\s*(SC_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    deploy_md = (ROOT / "docs" / "deploy.md").read_text()
    names = set()
    for values_file in VALUES_FILES:
        manifests = render(load_values(values_file))
        for m in by_kind(manifests, "ConfigMap").values():
            names |= set(m["data"])
        for _, spec in pod_specs(manifests):
            names |= {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    unknown = sorted(n for n in names if n.startswith("SC_") and n not in known and f"`{n}`" not in deploy_md)
    assert not unknown, f"settings neither in .env.example nor documented in docs/deploy.md: {unknown}"


def test_deploy_guide_covers_the_install() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    for needle in ("helm dependency update", "cert-manager", "Flink Kubernetes Operator", "Strimzi",
                   "create secret generic", "helm install", "docker build", "helm-python-sdk"):  # fmt: skip
        assert needle in text, needle
