"""serving/: the TF Serving configuration files and the stand-in server's flags."""

import os
import subprocess
import sys

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfstyle import signature as sig

SERVING = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serving")


def test_models_config_parses_and_names_the_model():
    config = model_server_config_pb2.ModelServerConfig()
    with open(os.path.join(SERVING, "models.config")) as f:
        text_format.Parse(f.read(), config)
    (model,) = config.model_config_list.config
    assert model.name == sig.MODEL_NAME and model.base_path == f"/models/{sig.MODEL_NAME}"


def test_compose_uses_that_config_and_a_long_rest_timeout():
    with open(os.path.join(SERVING, "docker-compose.yml")) as f:
        compose = f.read()
    assert "tensorflow/serving:" in compose
    assert "--model_config_file=/config/models.config" in compose
    assert "./models.config:/config/models.config" in compose
    assert "--rest_api_timeout_in_ms=3600000" in compose
    assert "--enable_batching" not in compose.replace("No --enable_batching", "")
    # The server exits when its model fails to load: a bounded restart policy, no crash loop.
    assert "restart: on-failure:3" in compose and "unless-stopped\n" not in compose


def test_stand_in_refuses_batching_and_missing_model_flags():
    server = [sys.executable, os.path.join(os.path.dirname(__file__), "standin", "model_server.py")]
    out = subprocess.run(
        [*server, "--model_base_path=/tmp/x", "--enable_batching=true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "batching is not supported" in out.stderr
    out = subprocess.run(server, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--model_base_path or --model_config_file" in out.stderr


def test_apt_install_uses_a_signed_by_keyring_not_apt_key():
    root = os.path.dirname(SERVING)
    for path in ("serving/README.md", "notebooks/tfstyle_colab.ipynb", "README.md"):
        with open(os.path.join(root, path)) as f:
            text = f.read()
        assert "apt-key add" not in text, path
        if "tensorflow-serving-apt stable" in text:
            keyring = "/usr/share/keyrings/tensorflow-serving.gpg"
            assert f"gpg --dearmor > {keyring}" in text, path
            assert f"deb [signed-by={keyring}] http://storage.googleapis.com/" in text, path


def test_serving_image_tags_exist_for_every_tensorflow_version():
    import re

    import tensorflow as tf

    from tfstyle import export

    assert export.serving_version("2.21.1") == "2.21.0"  # no Serving patch release
    assert export.serving_version("2.16.0") == "2.16.1"  # no 2.16.0
    assert export.serving_version("2.21.0rc1") == "2.21.0"
    newest = max(export.SERVING_IMAGES.values(), key=lambda v: tuple(map(int, v.split("."))))
    assert export.serving_version("2.99.0") == newest
    minor = ".".join(tf.__version__.split(".")[:2])
    if minor in export.SERVING_IMAGES:
        assert export.serving_version().startswith(minor + ".")
    root = os.path.dirname(SERVING)
    for path in ("README.md", "serving/README.md", "serving/docker-compose.yml"):
        with open(os.path.join(root, path)) as f:
            tags = re.findall(
                r"tensorflow/serving:(?:\$\{TF_SERVING_VERSION:-)?(\d[\d.]*\d)", f.read()
            )
        assert tags, path
        assert set(tags) <= set(export.SERVING_IMAGES.values()), (path, tags)


def _k8s() -> dict:
    import yaml

    docs = {}
    for name in sorted(os.listdir(os.path.join(SERVING, "k8s"))):
        if os.path.isdir(os.path.join(SERVING, "k8s", name)):  # an overlay (print-size/)
            continue
        with open(os.path.join(SERVING, "k8s", name)) as f:
            for doc in yaml.safe_load_all(f):
                docs[doc["kind"]] = doc
    return docs


def test_k8s_manifests_are_valid_kubernetes():
    import kubernetes_validate

    docs = _k8s()
    assert set(docs) == {
        "Kustomization", "PersistentVolumeClaim", "Deployment", "Service",
        "HorizontalPodAutoscaler",
    }  # fmt: skip
    for kind, doc in docs.items():
        if kind != "Kustomization":  # kustomize's own file: not a cluster object
            kubernetes_validate.validate(doc, "1.30", strict=True)
    files = docs["Kustomization"]["resources"]
    assert all(os.path.isfile(os.path.join(SERVING, "k8s", f)) for f in files)
    assert len(files) == 4


def test_k8s_agrees_with_models_config_the_export_and_the_memory_figures():
    import re

    from tfstyle import export, memory

    docs = _k8s()
    deployment, service = docs["Deployment"], docs["Service"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"tensorflow/serving:{container['image'].split(':')[1]}"
    assert container["image"].split(":")[1] in export.SERVING_IMAGES.values()
    args = dict(a.lstrip("-").split("=", 1) for a in container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": int(args["port"]), "http": int(args["rest_api_port"])}
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # The readiness probe asks TF Serving's REST status of the model the config names.
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == f"/v1/models/{sig.MODEL_NAME}" and probe["port"] == "http"
    # TF Serving opens its ports once the model is loaded and warmed up (about a minute for an
    # export of max_size 4096 here): a startup probe on the gRPC port holds the liveness probe
    # back for up to 10 minutes, so a replica still loading is not restarted.
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["tcpSocket"] == liveness["tcpSocket"] == {"port": "grpc"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    # models.config comes from the ConfigMap, mounted where --model_config_file points.
    generated = docs["Kustomization"]["configMapGenerator"][0]
    assert generated["files"] == ["models.config=../models.config"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args["model_config_file"] == mounts["config"] + "/models.config"
    config = model_server_config_pb2.ModelServerConfig()
    with open(os.path.join(SERVING, "models.config")) as f:
        text_format.Parse(f.read(), config)
    (model,) = config.model_config_list.config
    assert model.base_path.startswith(mounts["models"] + "/")
    # Memory for the requests that can run at once at 1024 px (gRPC keeps one of its threads to
    # poll): the request holds the measured peak, the limit the bound (each request's peak
    # alone, as if they shared nothing).
    running = int(args["grpc_max_threads"]) - 1 + int(args["rest_api_num_threads"])
    measured = memory.SERVED_PEAK_GIB[1024][running]
    bound = memory.SERVED_LOADED_GIB + running * memory.served_per_request_gib(1024)
    request = float(re.fullmatch(r"(\d+)Gi", container["resources"]["requests"]["memory"])[1])
    limit = float(re.fullmatch(r"(\d+)Gi", container["resources"]["limits"]["memory"])[1])
    assert measured <= request < measured + 1
    assert bound <= limit < bound + 1


def test_k8s_print_size_overlay_holds_the_measured_4096_px_requests():
    """``serving/k8s/print-size/``: the base with the memory a replica needs to serve an export
    of max_size 4096 (requests above 1024 px in 1024 px tiles), from the served measurements."""
    import re

    import kubernetes_validate
    import yaml

    from tfstyle import export, memory

    overlay = os.path.join(SERVING, "k8s", "print-size")
    with open(os.path.join(overlay, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    assert kustomization["resources"] == ["../"]
    [patch] = kustomization["patches"]
    with open(os.path.join(overlay, patch["path"])) as f:
        memory_patch = yaml.safe_load(f)
    base = _k8s()["Deployment"]
    assert memory_patch["kind"] == "Deployment"
    assert memory_patch["metadata"]["name"] == base["metadata"]["name"]
    [container] = base["spec"]["template"]["spec"]["containers"]
    [patched] = memory_patch["spec"]["template"]["spec"]["containers"]
    assert patched["name"] == container["name"]
    # The merged Deployment is still a valid one.
    container["resources"] = {**container["resources"], **patched["resources"]}
    kubernetes_validate.validate(base, "1.30", strict=True)
    # The base's thread counts: one gRPC and one REST request at once, each possibly 4096 px.
    args = dict(a.lstrip("-").split("=", 1) for a in container["args"])
    running = int(args["grpc_max_threads"]) - 1 + int(args["rest_api_num_threads"])
    assert export.SERVED_TILE_SIZE == memory.SERVED_TILED_TILE
    one = memory.served_per_request_gib(4096, export.SERVED_TILE_SIZE, 1184)
    request = float(re.fullmatch(r"(\d+)Gi", patched["resources"]["requests"]["memory"])[1])
    limit = float(re.fullmatch(r"(\d+)Gi", patched["resources"]["limits"]["memory"])[1])
    assert (
        memory.SERVED_TILED_LOADED_GIB + one <= request < memory.SERVED_TILED_LOADED_GIB + one + 1
    )
    bound = memory.SERVED_TILED_LOADED_GIB + running * one
    assert bound <= limit < bound + 1


@pytest.mark.parametrize(
    "flag, says",
    [
        ("--port=70000", "argument --port: expected a port, 0 to 65535; got '70000'"),
        ("--port=٨٥٠١", "argument --port: expected a port, 0 to 65535; got '٨٥٠١'"),
        ("--rest_api_port=-1", "argument --rest_api_port: expected a port"),
        ("--host=\x1b[2Jx", "--host must be an IP address or a host name; got '\\x1b[2Jx'"),
    ],
)
def test_stand_in_checks_its_address_flags_in_one_line(flag, says, capsys):
    """Probe round 7 (issue 29): a port of 70000 or in other digits was taken; a bad --host was
    a traceback after the model had loaded, its escapes printed raw."""
    from standin import model_server

    with pytest.raises(SystemExit) as exit_:
        model_server.parse_flags(["--model_base_path=/tmp/x", flag])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and says in lines[-1] and "\x1b" not in lines[-1]
