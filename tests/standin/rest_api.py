"""The REST API over a ``ModelManager``: ``RestServer`` (a thread per connection) and
``RestHandler`` (the ``/v1/models/...`` endpoints, request bodies, clients that go away)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from tensorflow.core.protobuf import error_codes_pb2

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from .calls import INVALID, NO_DEADLINE_TIMEOUT_MS, Call, ServingError, _limit
    from .json_tensors import _json_to_request, _parse_json, _response_to_json
    from .manager import ModelManager, State
else:  # run as a script: its directory, tests/standin, is on sys.path
    from calls import INVALID, NO_DEADLINE_TIMEOUT_MS, Call, ServingError, _limit
    from json_tensors import _json_to_request, _parse_json, _response_to_json
    from manager import ModelManager, State

log = logging.getLogger("model_server")

# Default of one of the stand-in's own flags (tensorflow_model_server has none of these).
REST_MAX_BODY_BYTES = 256 * 2**20


# gRPC status -> HTTP status, as TF Serving's REST server maps them (http_server.cc,
# ToHTTPStatusCode).
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,  # "client closed request"
    grpc.StatusCode.UNKNOWN: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
}


class RestServer(ThreadingHTTPServer):
    """The REST API: one thread per connection (HTTP/1.1 keep-alive)."""

    daemon_threads = True

    def __init__(
        self,
        address,
        manager: ModelManager,
        timeout_ms: int = 30000,
        no_deadline_timeout_ms: int = NO_DEADLINE_TIMEOUT_MS,
        max_body_bytes: int = REST_MAX_BODY_BYTES,
    ):
        self.manager = manager
        if timeout_ms > 0:
            self.run_limit = _limit(timeout_ms, "--rest_api_timeout_in_ms")
        else:
            self.run_limit = _limit(no_deadline_timeout_ms, "--no_deadline_timeout_in_ms")
        self.max_body_bytes = max_body_bytes
        self.stopping = False
        super().__init__(address, RestHandler)


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # answer even a garbled request line with headers
    timeout = 120  # seconds a connection may stay silent (idle keep-alive, a stalled body)
    server: RestServer
    _path = re.compile(r"^/v1/models/([^/:]+)(?:/versions/([0-9]{1,18}))?(/metadata|:predict)?$")

    def log_message(self, fmt, *args):
        log.debug("rest: " + fmt, *args)

    # -- responses: always JSON ------------------------------------------------------------

    def _send(self, status: int, body: dict) -> None:
        # TF Serving writes its JSON with rapidjson's PrettyWriter (4-space indents, one value a
        # line): a 1024 px uint8 "image" output is about 110 MiB of it.
        data = json.dumps(body, indent=4).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client has gone
            self.close_connection = True

    def _error(self, err: ServingError) -> None:
        status = err.http_status or HTTP_STATUS.get(err.code, HTTPStatus.INTERNAL_SERVER_ERROR)
        self._send(status, {"error": err.message})
        if self._body_unread:
            self._linger()

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, headers too long, unknown method), as
        JSON ``{"error": ...}`` like every other answer."""
        self.close_connection = True
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = message or str(code)
        self.log_error("code %d, message %s", code, text)
        data = json.dumps({"error": text}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
                self.wfile.write(data)
        except OSError:
            pass

    def _linger(self) -> None:
        """Close after refusing a body unread: stop sending, discard what the client is still
        sending for a moment (closing with unread data would reset the connection before the
        client reads the answer)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            end, total = time.monotonic() + 1.0, 0
            while time.monotonic() < end and total < 2**20:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                total += len(chunk)
        except OSError:
            pass

    # -- the request body ------------------------------------------------------------------

    def _declared_length(self) -> int | None:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        text = {v.strip() for v in values}
        if len(text) != 1 or not re.fullmatch(r"[0-9]{1,19}", next(iter(text))):
            self.close_connection = True
            raise ServingError(INVALID, f"Malformed Content-Length header: {', '.join(values)!r}")
        length = int(next(iter(text)))
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Request body of {length} bytes is over this server's limit of "
                f"{self.server.max_body_bytes} bytes (--rest_api_max_body_bytes)",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        return length

    def handle_expect_100(self):
        try:  # refuse an oversized or malformed body before the client sends it
            self._declared_length()
        except ServingError as err:
            self._body_unread = True
            self._error(err)
            return False
        return super().handle_expect_100()

    _body_unread = False

    def _read_body(self) -> bytes:
        """The whole body (Content-Length or chunked), after checking its declared size."""
        self._body_unread = True
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            self.close_connection = True  # until the whole body is read
            if self.headers.get("Content-Length") is not None:
                raise ServingError(INVALID, "Both Content-Length and Transfer-Encoding given")
            if encoding.strip().lower() != "chunked":
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED, f"Unsupported Transfer-Encoding: {encoding!r}"
                )
            body = self._read_chunked()
            self.close_connection = self.headers.get("Connection", "").lower() == "close"
        else:
            length = self._declared_length()
            if length is None:
                # An empty body ("The document is empty" for :predict, as TF Serving says);
                # a POST may have sent one anyway, unframed: close after answering.
                self.close_connection = self.close_connection or self.command == "POST"
                self._body_unread = self.command == "POST"
                return b""
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                raise ServingError(
                    INVALID, f"Request body ended after {len(body)} of the {length} bytes declared"
                )
        self._body_unread = False
        return body

    def _read_chunked(self) -> bytes:
        limit, body = self.server.max_body_bytes, bytearray()
        while True:
            line = self.rfile.readline(1024)
            size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size):
                raise ServingError(INVALID, "Malformed chunked request body")
            size = int(size, 16)
            if size == 0:
                break
            if len(body) + size > limit:
                raise ServingError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Request body is over this server's limit of {limit} bytes "
                    "(--rest_api_max_body_bytes)",
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                )
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise ServingError(INVALID, "Malformed chunked request body")
            body += chunk
        for _ in range(100):  # trailer fields, up to the blank line
            if self.rfile.readline(65537) in (b"\r\n", b"\n", b""):
                break
        return bytes(body)

    # -- dispatch ----------------------------------------------------------------------------

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
            if self.server.stopping:
                self.close_connection = True
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down")
            match = self._path.match(self.path)
            action = match and match.group(3)
            if (
                not match
                or method not in ("GET", "POST")
                or (method == "POST") != (action == ":predict")
            ):
                raise ServingError(INVALID, f"Malformed request: {method} {self.path}")
            name, version = match.group(1), match.group(2)
            version = None if version is None else int(version)
            if method == "POST":
                self._predict(name, version, body)
            elif action == "/metadata":
                self._metadata(name, version)
            else:
                self._status(name, version)
        except ServingError as err:
            self._error(err)
        except TimeoutError:
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_TIMEOUT, {"error": "Timed out reading the request"})
        except Exception as err:  # a bug here must not cost the client its answer
            log.exception("REST %s %s failed", method, self.path)
            self.close_connection = True
            message = f"Internal error: {type(err).__name__}: {err}"
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})

    def _predict(self, name: str, version: int | None, body: bytes) -> None:
        manager = self.server.manager
        call = Call("REST predict", *self.server.run_limit)
        with manager.track(call):  # until the answer is written (shutdown waits for it)
            try:
                document = _parse_json(body)
                servable = manager.get(name, version)
                request, columnar = _json_to_request(servable, name, version, document)
                with self._watch_client(call):
                    response = servable.predict(request, call)
                self._send(HTTPStatus.OK, _response_to_json(response, columnar))
            except ServingError as err:
                self._error(err)

    @contextlib.contextmanager
    def _watch_client(self, call: Call):
        """While the run goes on, watch the connection: if the client closes it, cancel."""
        done = threading.Event()
        sock = self.connection

        def watch():
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
            while not done.is_set():
                if not poller.poll(200):
                    continue
                try:
                    data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    call.cancel("the HTTP client closed the connection")
                return  # or it sent more (a pipelined request): it is still there

        threading.Thread(target=watch, name="rest-watch", daemon=True).start()
        try:
            yield
        finally:
            done.set()

    def _metadata(self, name: str, version: int | None) -> None:
        from google.protobuf import json_format

        servable = self.server.manager.get(name, version)
        # http_rest_api_util.cc ToJsonString: proto field names, every field printed.
        sigs = json.loads(
            json_format.MessageToJson(
                servable.metadata(),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        )
        body = {
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": sigs},
        }
        self._send(HTTPStatus.OK, body)

    def _status(self, name: str, version: int | None) -> None:
        items = self.server.manager.model_status(name, version)
        body = {
            "model_version_status": [
                {
                    "version": str(v),
                    "state": State.Name(state),
                    "status": {
                        "error_code": error_codes_pb2.Code.Name(code),
                        "error_message": msg,
                    },
                }
                for v, (state, msg, code) in items
            ]
        }
        self._send(HTTPStatus.OK, body)
