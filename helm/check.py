#!/usr/bin/env python3
"""Lint, render and validate the dunning Helm chart, offline.

Needs `pip install helm-python-sdk kubernetes-validate` (Helm runs as a library: no helm binary,
no cluster). For each values case below it
  1. lints the chart in strict mode (warnings fail) for the target Kubernetes version,
  2. renders it as a fresh install,
  3. parses every manifest (duplicate YAML keys fail) and validates it with kubernetes-validate
     against the target version's strict schemas (unknown fields fail); the one CRD kind the
     chart may emit, ServiceMonitor, gets a structural check instead,
  4. checks that the Service selects the API pods and never the engine pods, and that each
     Deployment's pods run the role they are for (DUNNING_ROLES).

Usage: python3 helm/check.py [KUBE_VERSION]   (default 1.30). Prints one summary line; exits 1
on any problem, after listing each problem on its own line.
"""

import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

CHART = Path(__file__).resolve().parent / "dunning"
KUBE = sys.argv[1] if len(sys.argv) > 1 else "1.30"
CASES = {
    "defaults": {},
    "engine": {"engine": {"enabled": True}},
    "everything": {
        "engine": {"enabled": True, "replicaCount": 2},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "smtp": {"existingSecret": "mail"},
        "autoscaling": {"enabled": False},
        "image": {"digest": "sha256:" + "0" * 64},
        "tls": {"existingSecret": "dunning-tls", "requireClientCertificates": True},
        "config": {"otlpEndpoint": "http://otel-collector.observability:4317"},
    },
}


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {sorted(dup)}", node.start_mark)
        return super().construct_mapping(node, deep)


def check_service_monitor(doc):
    spec = doc.get("spec", {})
    ok = doc.get("apiVersion") == "monitoring.coreos.com/v1" and spec.get("selector", {}).get("matchLabels")
    ok = ok and all(e.get("port") and e.get("path") for e in spec.get("endpoints") or [{}])
    return [] if ok else ["ServiceMonitor lacks apiVersion, selector or endpoints port/path"]


def pod_roles(docs, role):
    return [next((e.get("value") for c in d["spec"]["template"]["spec"]["containers"]
                  for e in c.get("env", []) if e["name"] == "DUNNING_ROLES"), None)
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["labels"].get("app.kubernetes.io/component") == role]


def pod_labels(docs, role):
    return [d["spec"]["template"]["metadata"]["labels"] for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["labels"].get("app.kubernetes.io/component") == role]


def check_case(chart, case, values):
    problems = []
    if tuple(map(int, KUBE.split(".")[:2])) < (1, 30):
        # Offline rendering reports a newer cluster than KUBE, so the preStop `sleep` action
        # (rendered only on >= 1.30) would show up; a real older cluster omits it, as here.
        values = {**values, "preStopSleepSeconds": 0}
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}.0")
    problems += [f"lint: {m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    problems += [f"lint: {e}" for e in report.get("errors") or []]

    docs = []
    for path, text in chart.render(values, name="check", namespace="billing", is_install=True).items():
        if path.endswith("NOTES.txt"):
            if not text.strip():
                problems.append("NOTES.txt is empty")
            continue
        try:
            docs += [(path, d) for d in yaml.load_all(text, Loader=StrictLoader) if d]
        except yaml.YAMLError as e:
            problems.append(f"{path}: {' '.join(str(e).split())}")
    for path, doc in docs:
        where = f"{path} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") == "ServiceMonitor":
            problems += [f"{where}: {p}" for p in check_service_monitor(doc)]
            continue
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
        except Exception as e:  # no schema for the kind, unsupported version, ...
            problems.append(f"{where}: {type(e).__name__}: {getattr(e, 'message', e)}")

    objects = [d for _, d in docs]
    selector = next(d["spec"]["selector"] for d in objects
                    if d["kind"] == "Service" and "grpc" in [p["name"] for p in d["spec"]["ports"]])
    matches = lambda labels: selector.items() <= labels.items()
    if not any(map(matches, pod_labels(objects, "api"))):
        problems.append("the gRPC Service does not select the API pods")
    if any(map(matches, pod_labels(objects, "engine"))):
        problems.append("the gRPC Service selects engine pods")
    engine_apart = bool(values.get("engine", {}).get("enabled"))
    expected = {"api": "api" if engine_apart else "api,engine", "engine": "engine"}
    for role, want in expected.items():
        for roles in pod_roles(objects, role):
            if roles != want:
                problems.append(f"{role} pods run DUNNING_ROLES={roles}, expected {want}")
    problems += check_probes_and_settings(objects, values)
    return [f"[{case}] {p}" for p in problems], len(docs)


def check_probes_and_settings(objects, values):
    """Probes are plain HTTP on the metrics port (/readyz, /healthz), and the TLS and OTLP values
    reach the pods as the settings the service reads."""
    problems = []
    deployments = [d for d in objects if d["kind"] == "Deployment"]
    for d in deployments:
        container = d["spec"]["template"]["spec"]["containers"][0]
        for probe, path in [("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
            got = container.get(probe, {}).get("httpGet", {})
            if got.get("path") != path or got.get("port") != "metrics":
                problems.append(f"{d['metadata']['name']}: {probe} is not GET {path} on the metrics port")
    data = next(d for d in objects if d["kind"] == "ConfigMap")["data"]
    tls = values.get("tls", {})
    wanted = {}
    if tls.get("existingSecret"):
        wanted |= {"DUNNING_TLS_CERT": "/etc/dunning/tls/tls.crt", "DUNNING_TLS_KEY": "/etc/dunning/tls/tls.key"}
        if tls.get("requireClientCertificates"):
            wanted["DUNNING_TLS_CLIENT_CA"] = "/etc/dunning/tls/ca.crt"
        for d in deployments:
            secrets = [v.get("secret", {}).get("secretName") for v in d["spec"]["template"]["spec"]["volumes"]]
            if tls["existingSecret"] not in secrets:
                problems.append(f"{d['metadata']['name']}: the TLS Secret is not mounted")
    if values.get("config", {}).get("otlpEndpoint"):
        wanted["DUNNING_OTLP_ENDPOINT"] = values["config"]["otlpEndpoint"]
    for key, value in wanted.items():
        if data.get(key) != value:
            problems.append(f"ConfigMap {key} = {data.get(key)!r}, expected {value!r}")
    for key in {"DUNNING_TLS_CERT", "DUNNING_OTLP_ENDPOINT"} - wanted.keys():
        if key in data:
            problems.append(f"ConfigMap sets {key} without its value")
    return problems


def main():
    problems, manifests = [], 0
    with helm.Chart.load(CHART) as chart:
        for case, values in CASES.items():
            try:
                found, count = check_case(chart, case, values)
            except helm.HelmError as e:  # a template that does not render, bad values, ...
                found, count = [f"[{case}] {type(e).__name__}: {' '.join(str(e).split())}"], 0
            problems += found
            manifests += count
    for p in problems:
        print(p)
    status = "FAIL" if problems else "OK"
    print(f"helm check {status}: {len(CASES)} value sets, {manifests} manifests, "
          f"Kubernetes {KUBE} strict, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
