#!/usr/bin/env python3
"""A local stand-in for ``tensorflow_model_server``, for machines where it cannot be installed.

Production uses TensorFlow Serving (see serving/README.md). This server exists so that tests and
notebooks can send real gRPC and REST requests without the real binary. It implements, over the
same SavedModel directory layout (``BASE_PATH/<version>/saved_model.pb``):

- gRPC ``tensorflow.serving.PredictionService/Predict`` and ``GetModelMetadata``, and
  ``tensorflow.serving.ModelService/GetModelStatus`` (protos from tensorflow-serving-api);
- REST ``POST /v1/models/NAME[/versions/N]:predict`` (the columnar ``"inputs"`` and the row
  ``"instances"`` forms; ``{"b64": ...}`` for binary strings; outputs whose alias ends in
  ``_bytes`` come back base64-encoded), ``GET /v1/models/NAME[/versions/N]`` (status) and
  ``GET /v1/models/NAME[/versions/N]/metadata``.

Each version is loaded through TensorFlow's session-based SavedModel loader
(``tf.compat.v1.saved_model.loader.load``), the mechanism ``tensorflow_model_server`` uses, and
requests are validated the way TF Serving's ``RunPredict`` does (the same status codes: unknown
model NOT_FOUND, unknown signature FAILED_PRECONDITION, missing/extra/mistyped inputs
INVALID_ARGUMENT; signature default inputs are honoured); REST bodies are parsed with the
rules and messages of TF Serving's ``json_tensor.cc``. Declared tensor shapes, dtypes and integer
ranges are checked before any value is materialised. Like TF Serving's default version policy,
only the latest version is served; the base path is polled for new versions every
``--file_system_poll_wait_seconds``. Warm-up requests in ``assets.extra/`` are replayed on load.

Runs, and what stops them (serving/README.md, "The local stand-in server", has the details):
at most ``--max_concurrent_runs`` requests run at once, each in a TF session of its own; the
client's gRPC deadline, ``--no_deadline_timeout_in_ms`` (gRPC requests without a deadline) or
``--rest_api_timeout_in_ms`` (REST) becomes the run's ``RunOptions.timeout_in_ms``; a request
whose client cancels or disconnects has its session closed, which cancels its run. SIGTERM or
Ctrl-C: no new requests, ``--shutdown_grace_seconds`` for those in flight, then their runs are
cancelled and the process exits.

Run it with ``tensorflow_model_server``'s flags::

    python tests/standin/model_server.py --port=8500 --rest_api_port=8501 \\
        --model_name=tfstyle --model_base_path=$PWD/saved_models/tfstyle

No batching, no XLA (TF Serving's defaults too).

The code is split by concern into the modules beside this one (each imports only those
before it): ``calls`` (a request's limits and cancellation, its TF session),
``tensor_protos``, ``servables`` (a loaded version), ``manager`` (versions, loading, status),
``grpc_api``, ``json_tensors``, ``rest_api``; this file holds the command line.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import math
import os
import re
import signal
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # its own process: Keras goes without pandas, matplotlib and
    for _unused in ("pandas", "matplotlib", "IPython"):  # IPython (1.5 s of a start here)
        sys.modules.setdefault(_unused, None)

import grpc  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from . import servables
    from .calls import NO_DEADLINE_TIMEOUT_MS
    from .grpc_api import ModelService, PredictionService
    from .manager import ModelManager
    from .rest_api import REST_MAX_BODY_BYTES, RestServer
    from .servables import MAX_CONCURRENT_RUNS
else:  # run as a script: its directory, tests/standin, is on sys.path
    import servables
    from calls import NO_DEADLINE_TIMEOUT_MS
    from grpc_api import ModelService, PredictionService
    from manager import ModelManager
    from rest_api import REST_MAX_BODY_BYTES, RestServer
    from servables import MAX_CONCURRENT_RUNS

log = logging.getLogger("model_server")
MAX_MESSAGE = 2**31 - 1  # TF Serving accepts messages up to INT_MAX bytes

# Default of one of the stand-in's own flags (tensorflow_model_server has none of these).
SHUTDOWN_GRACE_SECONDS = 5.0


def parse_flags(argv=None) -> argparse.Namespace:
    def boolean(v: str) -> bool:
        if v.lower() not in ("true", "false", "1", "0"):
            raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")
        return v.lower() in ("true", "1")

    def port(value: str) -> int:  # ASCII digits only (int() takes "٨٥٠١"), 0-65535
        text = value.strip()
        if not (text.isascii() and text.isdigit() and int(text) <= 65535):
            raise argparse.ArgumentTypeError(f"expected a port, 0 to 65535; got {value!r}")
        return int(text)

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=port, default=8500, help="gRPC port (default 8500)")
    p.add_argument(
        "--host",
        default="0.0.0.0",
        help="the address to listen on (the stand-in's own flag; TF Serving listens on every "
        "address, 0.0.0.0, as this does by default; 127.0.0.1 keeps it to this machine)",
    )
    p.add_argument("--rest_api_port", type=port, default=0, help="REST port; 0 disables REST")
    p.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=30000,
        help="run timeout of REST requests (default 30000; 0: --no_deadline_timeout_in_ms)",
    )
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", default="")
    p.add_argument("--model_config_file", default="")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    p.add_argument("--enable_batching", type=boolean, nargs="?", const=True, default=False)
    p.add_argument(
        "--xla_cpu_compilation_enabled",
        type=boolean,
        nargs="?",
        const=True,
        default=False,
        help="accepted for compatibility; XLA stays off",
    )
    p.add_argument("--grpc_max_threads", type=int, default=16)
    p.add_argument("--max_num_load_retries", type=int, default=5)
    p.add_argument("--load_retry_interval_micros", type=int, default=60 * 10**6)
    p.add_argument(
        "--enable_serialization_as_tensor_content",
        type=boolean,
        nargs="?",
        const=True,
        default=False,
        help="gRPC outputs as raw tensor_content (default: typed fields, as TF Serving)",
    )
    # The stand-in's own flags (tensorflow_model_server has none of these):
    p.add_argument(
        "--max_concurrent_runs",
        type=int,
        default=MAX_CONCURRENT_RUNS,
        help="requests run at once per model version, each in its own TF session; more wait "
        f"(default {MAX_CONCURRENT_RUNS})",
    )
    p.add_argument(
        "--no_deadline_timeout_in_ms",
        type=int,
        default=NO_DEADLINE_TIMEOUT_MS,
        help="run timeout of gRPC requests sent without a deadline "
        f"(default {NO_DEADLINE_TIMEOUT_MS}, 1 h; 0: none, as TF Serving)",
    )
    p.add_argument(
        "--rest_api_max_body_bytes",
        type=int,
        default=REST_MAX_BODY_BYTES,
        help=f"larger REST bodies are refused unread with 413 (default {REST_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--shutdown_grace_seconds",
        type=float,
        default=SHUTDOWN_GRACE_SECONDS,
        help="on SIGTERM, time requests in flight get before their runs are cancelled "
        f"(default {SHUTDOWN_GRACE_SECONDS:g})",
    )
    args = p.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", args.host):  # an address or a host name
        p.error(f"--host must be an IP address or a host name; got {args.host!r}")
    if bool(args.model_base_path) == bool(args.model_config_file):
        p.error("give exactly one of --model_base_path or --model_config_file")
    if args.enable_batching:
        p.error("--enable_batching: batching is not supported (tfstyle's inputs are scalars)")
    if args.max_concurrent_runs < 1:
        p.error("--max_concurrent_runs must be at least 1")
    if args.rest_api_max_body_bytes < 1:
        p.error("--rest_api_max_body_bytes must be at least 1")
    for flag in ("rest_api_timeout_in_ms", "no_deadline_timeout_in_ms", "shutdown_grace_seconds"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            p.error(f"--{flag} must be a number >= 0")
    return args


def models_from_flags(args) -> dict[str, str]:
    if args.model_base_path:
        return {args.model_name: os.path.abspath(args.model_base_path)}
    config = model_server_config_pb2.ModelServerConfig()
    with open(args.model_config_file) as f:
        text_format.Parse(f.read(), config)
    base = os.path.dirname(os.path.abspath(args.model_config_file))
    return {
        m.name: m.base_path if os.path.isabs(m.base_path) else os.path.join(base, m.base_path)
        for m in config.model_config_list.config
    }


def shut_down(manager: ModelManager, grpc_server, http: RestServer | None, grace: float) -> None:
    """Stop accepting, give requests in flight ``grace`` seconds, then cancel their runs."""
    start = time.monotonic()
    log.info(
        "stopping: no new requests; %d in flight get %g s to finish", manager.in_flight(), grace
    )
    manager.stop()
    # gRPC refuses new RPCs now; the runs in flight are cancelled below, at the grace period's
    # end, and gRPC's own cancelling (a second later) is only the backstop, not a race with it.
    grpc_stopped = grpc_server.stop(grace + 1.0)
    if http is not None:
        http.stopping = True
        http.shutdown()
        http.server_close()
    while manager.in_flight() and time.monotonic() - start < grace:
        time.sleep(0.05)
    if manager.in_flight():
        log.info("grace period over: cancelling %d runs", manager.in_flight())
        manager.cancel_all("the server is shutting down")
        end = time.monotonic() + 2.0
        while manager.in_flight() and time.monotonic() < end:
            time.sleep(0.05)
    grpc_stopped.wait(timeout=0.5)
    if manager.in_flight():
        log.warning("%d requests still running; exiting without them", manager.in_flight())
    manager.close_all()
    log.info("stopped after %.1f s", time.monotonic() - start)


def serve(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_flags(argv)
    servables.SERIALIZE_AS_TENSOR_CONTENT = args.enable_serialization_as_tensor_content
    stopped = threading.Event()

    def stop(signum, frame):
        log.info("signal %d: shutting down", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    manager = ModelManager(
        models_from_flags(args),
        args.file_system_poll_wait_seconds,
        args.max_concurrent_runs,
        args.max_num_load_retries,
        args.load_retry_interval_micros / 1e6,
    )
    failed = manager.poll()
    if stopped.is_set():
        return 0
    if failed:  # as tensorflow_model_server: a model that fails its first load stops the start
        print(f"Failed to start server. Error: {failed[0]}", flush=True)
        return 255
    manager.start_polling()

    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads), options=options
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, args.no_deadline_timeout_in_ms), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    log.info("Running gRPC ModelServer at %s:%d ...", args.host, args.port)

    http = None
    if args.rest_api_port:
        http = RestServer(
            (args.host, args.rest_api_port),
            manager,
            args.rest_api_timeout_in_ms,
            args.no_deadline_timeout_in_ms,
            args.rest_api_max_body_bytes,
        )
        threading.Thread(target=http.serve_forever, name="rest", daemon=True).start()
        log.info("Exporting HTTP/REST API at:localhost:%d ...", args.rest_api_port)

    stopped.wait()
    shut_down(manager, server, http, args.shutdown_grace_seconds)
    return 0


if __name__ == "__main__":
    code = serve()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit now: do not wait at interpreter exit for worker threads (gRPC's pool, REST
    # connections) that are still unwinding a cancelled run.
    os._exit(code)
