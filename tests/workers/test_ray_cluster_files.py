"""The deployment files under hwsearch/workers/cluster/ parse and hold what the docs say.

The cluster-launcher YAML is checked the way ``ray up`` checks it: defaults filled in by
Ray's own ``prepare_config``, then ``validate_config`` against the ``ray-schema.json`` that
Ray ships. KubeRay's CRDs are not in the Ray package, so the RayCluster and RayJob fields
the operator requires are checked here.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ray = pytest.importorskip("ray")
jsonschema = pytest.importorskip("jsonschema")

from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

import hwsearch  # noqa: E402

CLUSTER = Path(hwsearch.__file__).parent / "workers" / "cluster"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _launcher() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    return loaded


def _kuberay() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_launcher_yaml_validates_against_the_schema_ray_ships() -> None:
    config = _launcher()
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # as written
    validate_config(prepare_config(copy.deepcopy(config)))  # as `ray up` fills it in


def test_launcher_has_a_head_cpu_workers_and_gpu_workers_installing_the_project() -> None:
    config = _launcher()
    types = config["available_node_types"]
    assert config["head_node_type"] == "head"
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert types["head"]["resources"] == {"CPU": 0}  # evaluations never land on the head
    assert "g5" in types["gpu_worker"]["node_config"]["InstanceType"]  # a GPU instance
    assert sum(t.get("min_workers", 0) for t in types.values()) <= config["max_workers"]
    assert any("pip install" in c and "hwsearch[ray]" in c for c in config["setup_commands"])
    assert any("cu1" in c for c in types["gpu_worker"]["worker_setup_commands"])
    start = " ".join(config["head_start_ray_commands"])
    assert "--head" in start and "--port=6379" in start
    assert any("$RAY_HEAD_IP:6379" in c for c in config["worker_start_ray_commands"])


def test_a_broken_launcher_yaml_is_caught_by_the_same_check() -> None:
    config = _launcher()
    config["available_node_types"]["gpu_worker"]["min_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def _containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = template["spec"]["containers"]
    assert containers, "a pod template needs at least one container"
    for container in containers:
        assert DNS_LABEL.fullmatch(container["name"]), container["name"]
        assert container["image"]
    return containers


def test_kuberay_raycluster_has_the_fields_the_operator_requires() -> None:
    cluster = _kuberay()["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert DNS_LABEL.fullmatch(cluster["metadata"]["name"])
    spec = cluster["spec"]
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())
    [head_container] = _containers(head["template"])
    ports = {p["containerPort"] for p in head_container["ports"]}
    assert {6379, 8265} <= ports  # GCS and the dashboard (Jobs API)
    env = {e["name"]: e for e in head_container["env"]}
    assert env["HWSEARCH_DB_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"

    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert isinstance(group["rayStartParams"], dict)
        _containers(group["template"])
    [gpu] = _containers(groups["gpu"]["template"])
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in _containers(groups["cpu"]["template"])[0]["resources"]["limits"]

    # Every container runs the Ray version the cluster declares (the image's base).
    docker = (CLUSTER / "Dockerfile").read_text()
    assert f"rayproject/ray:{spec['rayVersion']}-py311" in docker


def test_kuberay_rayjob_runs_the_search_on_that_cluster_with_the_ray_executor() -> None:
    kinds = _kuberay()
    job = kinds["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    assert DNS_LABEL.fullmatch(job["metadata"]["name"])
    spec = job["spec"]
    assert spec["clusterSelector"]["ray.io/cluster"] == kinds["RayCluster"]["metadata"]["name"]
    entry = spec["entrypoint"].split()
    assert entry[:2] == ["hwsearch", "run"]
    assert entry[entry.index("--executor") + 1] == "ray"
    assert spec["submissionMode"] in {"K8sJobMode", "HTTPMode", "SidecarMode", "InteractiveMode"}


def test_the_rayjob_entrypoint_parses_as_a_cli_call(tmp_path: Path) -> None:
    """The entrypoint's options exist on the CLI (a renamed option would break the job)."""
    from typer.testing import CliRunner

    from hwsearch.service.cli import app

    entry = _kuberay()["RayJob"]["spec"]["entrypoint"].split()
    missing = tmp_path / "missing.yaml"
    result = CliRunner().invoke(app, [*entry[1:2], str(missing), *entry[3:]])
    # The only complaint is the spec file this machine does not have, not an option.
    assert "No such option" not in result.output
    assert result.exit_code != 0
