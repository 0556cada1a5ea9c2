"""Client for the exported model under TensorFlow Serving: gRPC (``PredictionService``) and REST.

``stylize`` runs one optimisation as a series of bounded requests (parts of ``chunk`` steps,
each resuming from the image the last one returned), with a progress bar, Ctrl-C, and retries
on other servers; ``predict`` and ``predict_rest`` send the whole run as one request. Each
request has an explicit deadline that grows with its steps and size.

By concern: ``arguments`` (checks, deadlines, ``ServingError``), ``transport`` (targets tried in
turn), ``grpc_api`` and ``rest_api`` (how a request travels), ``calls`` (the three calls). The
inputs, their dtypes and defaults are ``tfstyle.signature``'s contract.

Example:
    >>> from tfstyle import client
    >>> image, loss = client.stylize("content.jpg", "style.jpg", server="a:8500,b:8500",
    ...                              iterations=300)
    >>> image.save("out.png")
"""

from tfstyle.client.arguments import (
    DEADLINE_BASE_S,
    DEADLINE_PART_STEPS,
    DEADLINE_PER_ITERATION_S,
    DEADLINE_SIZE,
    MAX_MESSAGE_BYTES,
    METADATA_TIMEOUT_S,
    REFUSED,
    RETRYABLE,
    ServingError,
    check_request,
    check_server,
    check_timeout,
    check_version,
    deadline_for,
    encode_input,
    servers_of,
    urls_of,
)  # fmt: skip
from tfstyle.client.calls import (
    DEFAULT_CHUNK,
    RunFailed,
    build_request,
    predict,
    predict_realtime,
    predict_rest,
    stylize,
)  # fmt: skip
from tfstyle.client.grpc_api import Grpc as _Grpc
from tfstyle.client.grpc_api import model_status
from tfstyle.client.rest_api import Rest as _Rest
from tfstyle.client.rest_api import json_tensor_value as _json_tensor_value
from tfstyle.client.rest_api import rest_defaults

__all__ = [
    "DEADLINE_BASE_S", "DEADLINE_PART_STEPS", "DEADLINE_PER_ITERATION_S", "DEADLINE_SIZE",
    "DEFAULT_CHUNK", "MAX_MESSAGE_BYTES", "METADATA_TIMEOUT_S", "REFUSED", "RETRYABLE", "RunFailed",
    "ServingError",
    "build_request", "check_request", "check_server", "check_timeout", "check_version",
    "deadline_for", "encode_input", "model_status", "predict", "predict_realtime",
    "predict_rest", "rest_defaults", "servers_of", "stylize", "urls_of", "_Grpc", "_Rest",
    "_json_tensor_value",
]  # fmt: skip
