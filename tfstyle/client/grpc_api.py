"""Requests over gRPC (TF Serving's ``PredictionService`` and ``ModelService``)."""

from __future__ import annotations

import threading
import time

from tfstyle import checks
from tfstyle import signature as sig
from tfstyle.client.arguments import (
    MAX_MESSAGE_BYTES,
    RETRYABLE,
    ServingError,
    check_server,
    check_timeout,
    check_version,
    describe,
)  # fmt: skip
from tfstyle.client.transport import Transport


def grpc_module():
    """The ``grpc`` module, or one line saying what to install."""
    from tfstyle import extras

    return extras.need("grpc", "the serving client", "grpcio", "serving")


def channel(server: str):
    """An insecure channel to ``server`` that sends and takes messages of up to 256 MiB."""
    check_server(server)
    grpc = grpc_module()
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return grpc.insecure_channel(server, options=options)


def one_line(err, server: str, model: str, timeout: float, hint: str = "") -> ServingError:
    """The ``ServingError`` for a failed call (``grpc.RpcError``): one line, the reason."""
    grpc = grpc_module()

    code = err.code()
    detail = checks.message_of(err.details() or "")
    if code == grpc.StatusCode.NOT_FOUND:
        message = f"model {model!r} not found on {server}: {detail}"
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        message = f"the server rejected the request: {detail}"
    elif code == grpc.StatusCode.FAILED_PRECONDITION:
        message = f"the server cannot run this request: {detail}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"no answer from {server} within the {timeout:g} s deadline" + (
            hint
            or "; raise the timeout (--timeout) for this many iterations or this server's speed"
        )
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach a model server at {server}: {detail}"
    else:
        message = f"{code.name}: {detail}"
    return ServingError(message, code.name)


class Grpc(Transport):
    """Requests over gRPC, one channel per server."""

    def __init__(self, servers: list[str]):
        super().__init__(servers)
        self.channels: dict = {}

    def forget(self, server: str) -> None:
        """Close the channel to ``server``: the next call opens a new connection (behind a
        load balancer, perhaps to another replica)."""
        open_channel = self.channels.pop(server, None)
        if open_channel is not None:  # closed aside: a close can wait on a call cut by Ctrl-C
            threading.Thread(target=open_channel.close, name="tfstyle-close", daemon=True).start()

    def stub(self, server: str, service: str):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if server not in self.channels:
            self.channels[server] = channel(server)
        module = {"predict": prediction_service_pb2_grpc, "model": model_service_pb2_grpc}
        stubs = {"predict": "PredictionServiceStub", "model": "ModelServiceStub"}
        return getattr(module[service], stubs[service])(self.channels[server])

    def defaults(self, model: str, version: int | None, timeout: float,
                 signature_name: str = sig.STYLIZE_SIGNATURE) -> dict:  # fmt: skip
        """The signature's default inputs (from the first server that answers)."""
        grpc = grpc_module()
        import tensorflow as tf
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        error = None
        for server in self.targets:
            try:
                answer = wait(self.stub(server, "predict").GetModelMetadata.future(
                    request, timeout=timeout
                ))  # fmt: skip
            except grpc.RpcError as err:
                error = one_line(err, server, model, timeout)
                if error.code in RETRYABLE:
                    continue
                raise error from None
            signatures = get_model_metadata_pb2.SignatureDefMap()
            answer.metadata["signature_def"].Unpack(signatures)
            if signature_name not in signatures.signature_def:
                raise ServingError(
                    f"the model {model!r} on {server} has no {signature_name!r} signature",
                    "INVALID_ARGUMENT",
                )
            found = signatures.signature_def[signature_name].defaults
            return {k: tf.make_ndarray(v).item() for k, v in found.items()}
        raise error

    def call(self, server: str, model: str, version, inputs: dict, timeout: float,
             signature_name: str = sig.STYLIZE_SIGNATURE) -> dict:  # fmt: skip
        grpc = grpc_module()
        import tensorflow as tf

        request = sig.predict_request(model, version, signature_name, inputs)
        try:
            answer = wait(self.stub(server, "predict").Predict.future(request, timeout=timeout))
        except grpc.RpcError as err:
            raise one_line(err, server, model, timeout) from None
        try:
            return {k: tf.make_ndarray(v).item() for k, v in answer.outputs.items()
                    if k != sig.IMAGE}  # fmt: skip
        except (ValueError, TypeError) as err:
            raise ServingError(f"unexpected answer from {server}: {describe(err)}") from None


def wait(future):
    """The result of a gRPC call future. Waits in short sleeps, so that Ctrl-C lands here (never
    inside gRPC's own locks) and at once; the call is then cancelled."""
    try:
        while not future.done():
            time.sleep(0.05)
    except KeyboardInterrupt:
        future.cancel()
        raise
    return future.result()


def model_status(
    server: str = "localhost:8500",
    model: str = sig.MODEL_NAME,
    version: int | None = None,
    timeout: float | None = 10.0,
) -> list[dict]:
    """``ModelService.GetModelStatus``: a list of ``{"version", "state", "error"}`` dicts
    (``timeout`` in seconds, finite and > 0; None: 10 s)."""
    grpc = grpc_module()

    check_timeout(timeout)
    check_version(version)
    timeout = 10.0 if timeout is None else timeout
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    state_name = get_model_status_pb2.ModelVersionStatus.State.Name
    with channel(server) as open_channel:
        try:
            response = model_service_pb2_grpc.ModelServiceStub(open_channel).GetModelStatus(
                request, timeout=timeout
            )
        except grpc.RpcError as err:
            raise one_line(err, server, model, timeout, hint=" (is it up?)") from None
    return [
        {"version": s.version, "state": state_name(s.state), "error": s.status.error_message}
        for s in response.model_version_status
    ]
