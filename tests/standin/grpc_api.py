"""The gRPC services over a ``ModelManager``: ``PredictionService`` (``Predict``,
``GetModelMetadata``) and ``ModelService`` (``GetModelStatus``)."""

from __future__ import annotations

import time

import grpc
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from .calls import NO_DEADLINE_TIMEOUT_MS, Call, ServingError, _limit
    from .manager import ModelManager
else:  # run as a script: its directory, tests/standin, is on sys.path
    from calls import NO_DEADLINE_TIMEOUT_MS, Call, ServingError, _limit
    from manager import ModelManager

#: A gRPC deadline further away than this is "no deadline" (gRPC reports ~2**63 s then).
NO_DEADLINE_SECONDS = 10 * 365 * 86400.0


def _spec_version(model_spec) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, no_deadline_timeout_ms: int = NO_DEADLINE_TIMEOUT_MS):
        self.manager = manager
        self.no_deadline_timeout_ms = no_deadline_timeout_ms

    def Predict(self, request, context):
        remaining = context.time_remaining()  # about 2**63 s when the client set no deadline
        if remaining is not None and remaining < NO_DEADLINE_SECONDS:
            call = Call("gRPC Predict", remaining, "the client's deadline")
        else:
            call = Call(
                "gRPC Predict",
                *_limit(self.no_deadline_timeout_ms, "--no_deadline_timeout_in_ms"),
            )
        client_deadline = call.limit == "the client's deadline" and call.deadline is not None

        def rpc_ended():
            # The RPC ended: after our answer (done), or before it because the client cancelled,
            # its connection dropped, its deadline passed or the server is stopping.
            if call.done:
                return
            if client_deadline and time.monotonic() >= call.deadline - 0.5:
                return  # RunOptions.timeout_in_ms stops the run; its session stays usable
            if self.manager.stopping:
                call.cancel("the server is shutting down", grpc.StatusCode.UNAVAILABLE)
            else:
                call.cancel("the client cancelled the RPC or went away")

        with self.manager.track(call):
            if not context.add_callback(rpc_ended):  # the RPC has already ended
                rpc_ended()
            try:
                servable = self.manager.get(
                    request.model_spec.name, _spec_version(request.model_spec)
                )
                return servable.predict(request, call)
            except ServingError as err:
                context.abort(err.code, err.message)

    def GetModelMetadata(self, request, context):
        try:
            servable = self.manager.get(request.model_spec.name, _spec_version(request.model_spec))
        except ServingError as err:
            context.abort(err.code, err.message)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Metadata field signature_def is the only one supported",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        packed = any_pb2.Any()
        packed.Pack(servable.metadata())
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            items = self.manager.model_status(
                request.model_spec.name, _spec_version(request.model_spec)
            )
        except ServingError as err:
            context.abort(err.code, err.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, (state, message, code) in items:
            entry = response.model_version_status.add(version=version, state=state)
            entry.status.error_code = code
            entry.status.error_message = message
        return response
