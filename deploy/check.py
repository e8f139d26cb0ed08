#!/usr/bin/env python3
"""Checks every config file in deploy/ without a container engine.

- every YAML file parses (all documents);
- every JSON file parses;
- compose.yaml validates against the Compose specification's JSON schema
  (path given as the first argument; a wheel or a .json file);
- Kubernetes manifests name an apiVersion, a kind and a metadata.name;
  every container of a Deployment has a readiness probe (gRPC health for
  the services, /healthz for the agent and the console), and an init container running the
  agent passes --once;
- every alert in prometheus/alerts.yml has a `runbook` annotation that
  names an existing heading of deploy/README.md;
- the Grafana dashboard's queries are non-empty PromQL naming veltrix_
  metrics (that the services export them is checked by a Rust test:
  services/query/tests/deploy.rs).
"""

import json
import pathlib
import sys
import zipfile

import jsonschema
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
# The image of the services and the agent (kustomization.yaml sets its tag).
IMAGE = "veltrix"
errors = []


def fail(path, message):
    errors.append(f"{path.relative_to(DEPLOY.parent)}: {message}")


def is_agent(container):
    return (container.get("command") or [""])[0] == "veltrix-agent"


def is_console(container):
    return (container.get("command") or [""])[0] == "veltrix-console"


def load_schema(arg):
    path = pathlib.Path(arg)
    if path.suffix == ".whl":
        return json.loads(zipfile.ZipFile(path).read("compose/config/compose_spec.json"))
    return json.loads(path.read_text())


def anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, spaces to '-',
    punctuation other than '-' and '_' dropped."""
    text = heading.strip().lower().replace(" ", "-")
    return "".join(c for c in text if c.isalnum() or c in "-_")


def check_runbooks(rules):
    alerts_file = DEPLOY / "prometheus/alerts.yml"
    readme = DEPLOY / "README.md"
    anchors = {
        anchor(line.lstrip("#")) for line in readme.read_text().splitlines() if line.startswith("#")
    }
    alerts = [r for g in rules.get("groups", []) for r in g.get("rules", []) if "alert" in r]
    if not alerts:
        fail(alerts_file, "no alerts found")
    for rule in alerts:
        link = rule.get("annotations", {}).get("runbook", "")
        page, _, fragment = link.partition("#")
        if page != "deploy/README.md" or fragment not in anchors:
            fail(alerts_file, f"alert {rule['alert']}: runbook '{link}' names no heading of deploy/README.md")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check.py COMPOSE_SCHEMA(.whl|.json)")
    docs = {}
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            try:
                docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            except yaml.YAMLError as e:
                fail(path, f"does not parse: {e}")
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError as e:
                fail(path, f"does not parse: {e}")

    compose = DEPLOY / "compose.yaml"
    validator = jsonschema.Draft7Validator(load_schema(sys.argv[1]))
    for e in validator.iter_errors(docs.get(compose, [{}])[0]):
        fail(compose, f"{'/'.join(map(str, e.path))}: {e.message}")

    for path, manifests in docs.items():
        if path.parent.name != "k8s" or path.name == "kustomization.yaml":
            # (Overlays hold patches, not manifests.)
            continue
        for m in manifests:
            if not (m.get("apiVersion") and m.get("kind") and m.get("metadata", {}).get("name")):
                fail(path, f"a manifest without apiVersion, kind or metadata.name: {m}")
            if m.get("kind") == "Deployment":
                pod = m["spec"]["template"]["spec"]
                for c in pod["containers"]:
                    probe = c.get("readinessProbe", {})
                    if not probe:
                        fail(path, f"container {c['name']} has no readiness probe")
                    elif is_agent(c) or is_console(c):
                        if probe.get("httpGet", {}).get("path") != "/healthz":
                            fail(path, f"container {c['name']} does not probe /healthz for readiness")
                    elif c.get("image", "").split(":")[0] == IMAGE and "grpc" not in probe:
                        fail(path, f"container {c['name']} has no gRPC readiness probe")
                for c in pod.get("initContainers", []):
                    if is_agent(c) and "--once" not in c.get("args", []):
                        fail(path, f"init container {c['name']} runs the agent without --once (it would never exit)")

    check_runbooks(docs.get(DEPLOY / "prometheus/alerts.yml", [{}])[0])

    dashboard = json.loads((DEPLOY / "grafana/dashboards/veltrix.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if "veltrix_" not in target.get("expr", ""):
                fail(DEPLOY / "grafana/dashboards/veltrix.json", f"panel '{panel['title']}' queries no veltrix_ metric")

    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"deploy/: {len(docs)} YAML files, compose schema, manifests, runbook links and dashboard checked")


main()
