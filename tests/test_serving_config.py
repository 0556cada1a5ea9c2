"""serving/: the TF Serving configuration files and the stand-in server's flags."""

import os
import subprocess
import sys

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


def test_stand_in_refuses_batching_and_missing_model_flags():
    server = [sys.executable, os.path.join(SERVING, "model_server.py")]
    out = subprocess.run(
        [*server, "--model_base_path=/tmp/x", "--enable_batching=true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "batching is not supported" in out.stderr
    out = subprocess.run(server, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--model_base_path or --model_config_file" in out.stderr
