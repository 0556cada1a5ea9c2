"""End to end: real gRPC and REST requests over loopback to a model server.

The server is ``tests/standin/model_server.py`` (the local stand-in) and, where
``tensorflow_model_server`` is on PATH, the real TensorFlow Serving, with the same flags.
"""

import base64
import concurrent.futures
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from helpers import (
    ANSWER_SIZE,
    EXPORT,
    STANDIN,
    ModelServer,
    Proxy,
    copy_model,
    free_port,
    pixels,
    png_bytes,
    raw_request,
)  # fmt: skip
from tensorflow_serving.apis import prediction_service_pb2_grpc

import tfstyle
from tfstyle import client, export, options
from tfstyle import signature as sig

pytestmark = pytest.mark.slow


def _servers():
    yield pytest.param(STANDIN, id="local")
    binary = shutil.which("tensorflow_model_server")
    yield pytest.param(
        [binary] if binary else None,
        id="tensorflow_model_server",
        marks=pytest.mark.skipif(
            binary is None,
            reason="tensorflow_model_server is not on PATH (it cannot be installed on this "
            "machine; see serving/README.md); the local stand-in server is tested instead",
        ),
    )


@pytest.fixture(scope="module", params=list(_servers()))
def server(request, tmp_path_factory, exported):
    """A server of a copy of the shared export, with its warm-up requests (as deployed)."""
    base = copy_model(exported, tmp_path_factory.mktemp("serve") / sig.MODEL_NAME, warmup=True)
    with ModelServer(base, command=request.param) as srv:
        srv.wait_for(1)
        yield srv


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def api_png(pngs, iterations, **options) -> np.ndarray:
    options = {**EXPORT, **export.EXPORT_DEFAULTS, **options}  # the export runs float32
    image = tfstyle.transfer(*pngs, iterations=iterations, progress=False, **options)
    return np.asarray(image)


def test_grpc_predict_equals_python_api(server, pngs):
    image, loss = client.predict(*pngs, server=server.address, iterations=3)
    assert image.format == "PNG" and image.size == ANSWER_SIZE
    np.testing.assert_array_equal(np.asarray(image), api_png(pngs, 3))
    assert loss > 0


def test_rest_predict_equals_grpc(server, pngs):
    rest, rest_loss = client.predict_rest(*pngs, url=server.url, iterations=3)
    grpc_image, grpc_loss = client.predict(*pngs, server=server.address, iterations=3)
    np.testing.assert_array_equal(np.asarray(rest), np.asarray(grpc_image))
    assert rest_loss == pytest.approx(grpc_loss, rel=1e-6)


def test_stylize_signature_over_grpc_and_rest(server, pngs):
    options = {"size": 32, "seed": 9, "init": "noise", "style_weight": 100.0}
    image, _ = client.predict(
        *pngs, server=server.address, iterations=2, signature_name=sig.STYLIZE_SIGNATURE, **options
    )
    assert image.size == (32, 24)
    np.testing.assert_array_equal(np.asarray(image), api_png(pngs, 2, **options))
    rest, _ = client.predict_rest(
        *pngs, url=server.url, iterations=2, signature_name=sig.STYLIZE_SIGNATURE, **options
    )
    np.testing.assert_array_equal(np.asarray(rest), np.asarray(image))


def test_rest_client_takes_defaults_from_metadata(server, pngs):
    # TF Serving's REST API asks for every input: the client fills the ones not given from
    # /metadata, so a stylize call with no options equals serving_default.
    path = f"/v1/models/{sig.MODEL_NAME}"
    defaults = client.rest_defaults(server.url, path, sig.STYLIZE_SIGNATURE, 30)
    part = {sig.START_STEP, sig.STOP_STEP, sig.RESUME_BYTES}
    masks = {sig.MASK, sig.CONTENT_MASK, sig.STYLE_MASK}
    assert set(defaults) == set(options.REQUEST_OPTIONS) | {sig.RETURN_IMAGE} | part | masks
    assert defaults[sig.RETURN_IMAGE] is False and defaults[sig.RESUME_BYTES] == ""
    assert defaults["size"] == EXPORT["size"] and defaults["init"] == "content"
    assert defaults["style_weight"] == pytest.approx(options.DEFAULTS["style_weight"])
    stylized, _ = client.predict_rest(
        *pngs, url=server.url, iterations=2, signature_name=sig.STYLIZE_SIGNATURE
    )
    default, _ = client.predict_rest(*pngs, url=server.url, iterations=2)
    np.testing.assert_array_equal(np.asarray(stylized), np.asarray(default))
    with pytest.raises(client.ServingError, match="has no signature 'nope'; it has serving_def"):
        client.predict_rest(*pngs, url=server.url, iterations=1, signature_name="nope")


@pytest.mark.parametrize(
    "tensor, value",
    [
        ({"dtype": "DT_INT32", "tensor_shape": {"dim": []}, "int_val": [7]}, 7),
        ({"dtype": "DT_INT64", "tensor_shape": {}, "int64_val": ["9007199254740993"]}, 2**53 + 1),
        ({"dtype": "DT_STRING", "string_val": ["bm9pc2U="]}, "noise"),
        ({"dtype": "DT_FLOAT", "tensor_content": "AADAPw=="}, 1.5),
        ({"dtype": "DT_BOOL", "bool_val": [True]}, True),
    ],
)
def test_json_tensor_value(tensor, value):
    assert client._json_tensor_value(tensor) == value


def test_model_status_grpc_and_rest(server):
    status = client.model_status(server.address, sig.MODEL_NAME)
    assert {"version": 1, "state": "AVAILABLE", "error": ""} in status
    with urllib.request.urlopen(f"{server.url}/v1/models/{sig.MODEL_NAME}", timeout=10) as r:
        body = json.loads(r.read())
    assert {"version": "1", "state": "AVAILABLE"}.items() <= body["model_version_status"][0].items()


def test_rest_raw_json_and_base64_output(server, pngs):
    body = {
        "signature_name": sig.DEFAULT_SIGNATURE,
        "inputs": {
            sig.CONTENT: {"b64": base64.b64encode(pngs[0]).decode()},
            sig.STYLE: {"b64": base64.b64encode(pngs[1]).decode()},
            sig.ITERATIONS: 1,
        },
    }
    request = urllib.request.Request(
        f"{server.url}/v1/models/{sig.MODEL_NAME}:predict", data=json.dumps(body).encode()
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        outputs = json.loads(r.read())["outputs"]
    png = base64.b64decode(outputs[sig.IMAGE_BYTES]["b64"])
    image = np.asarray(PIL.Image.open(io.BytesIO(png)))
    assert image.shape == (*ANSWER_SIZE[::-1], 3)
    assert outputs[sig.IMAGE] == []  # PNG only, by default
    # stylize with return_image: the raw pixels too (REST needs every input: from /metadata).
    path = f"/v1/models/{sig.MODEL_NAME}"
    inputs = client.rest_defaults(server.url, path, sig.STYLIZE_SIGNATURE, 30)
    body = {"signature_name": sig.STYLIZE_SIGNATURE,
            "inputs": {**inputs, **body["inputs"], sig.RETURN_IMAGE: True}}  # fmt: skip
    request = urllib.request.Request(
        f"{server.url}/v1/models/{sig.MODEL_NAME}:predict", data=json.dumps(body).encode()
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        outputs = json.loads(r.read())["outputs"]
    np.testing.assert_array_equal(image, np.array(outputs[sig.IMAGE], dtype=np.uint8))


def test_1024px_answer_fits_a_stock_grpc_client(stub, pngs):
    # Encoded as TF Serving encodes outputs by default (Tensor::AsProtoField: uint8 in int_val),
    # a 1024 px answer is the PNG and the loss: under gRPC's default 4 MiB receive limit. With
    # return_image it would not be.
    answer = stub.Predict(
        raw_request(
            pngs,
            sig.STYLIZE_SIGNATURE,
            size=np.int32(1024),
            iterations=np.int32(0),
            style_scale=np.float32(0.125),
        ),  # (the style at 128 px: the answer's size)
        timeout=300,
    )
    assert answer.outputs[sig.IMAGE].dtype == tf.uint8.as_datatype_enum
    assert not answer.outputs[sig.IMAGE].int_val and not answer.outputs[sig.IMAGE].tensor_content
    png = tf.make_ndarray(answer.outputs[sig.IMAGE_BYTES]).item()
    assert PIL.Image.open(io.BytesIO(png)).size == (1024, 768)
    assert answer.ByteSize() < 4 * 2**20
    from tensorflow.core.framework import tensor_pb2

    raw = tensor_pb2.TensorProto(dtype=tf.uint8.as_datatype_enum, int_val=[200] * (768 * 1024 * 3))
    assert raw.ByteSize() > 4 * 2**20  # the pixels alone, as the real server would send them


def test_a_run_in_parts_over_grpc_and_rest(server, pngs):
    quiet = {"iterations": 7, "progress": False}
    whole, _ = client.predict(
        *pngs, server=server.address, iterations=7, signature_name=sig.STYLIZE_SIGNATURE
    )
    one, _ = client.stylize(*pngs, server=server.address, chunk=7, **quiet)
    np.testing.assert_array_equal(np.asarray(one), np.asarray(whole))  # one part: the whole run
    seen = []
    parts, loss = client.stylize(
        *pngs, server=server.address, chunk=3, callback=lambda *a: seen.append(a), **quiet
    )
    assert [s for s, _, _ in seen] == [3, 6, 7] and seen[-1][1] == loss
    assert [image.size for _, _, image in seen] == [ANSWER_SIZE] * 3
    np.testing.assert_array_equal(np.asarray(seen[-1][2]), np.asarray(parts))
    assert not np.array_equal(np.asarray(parts), np.asarray(whole))  # L-BFGS restarts
    rest, rest_loss = client.stylize(*pngs, url=server.url, chunk=3, **quiet)
    np.testing.assert_array_equal(np.asarray(rest), np.asarray(parts))
    assert rest_loss == loss
    # A server that does not answer: its parts go to the next one.
    dead = f"127.0.0.1:{free_port()}"
    moved, _ = client.stylize(*pngs, server=f"{dead},{server.address}", chunk=3, **quiet)
    np.testing.assert_array_equal(np.asarray(moved), np.asarray(parts))


def test_a_failed_part_keeps_the_image_so_far(server, pngs):
    """A bad request fails at once, said as the server's refusal (not as a failed part: there is
    nothing to keep); a server that stops mid-run leaves the image so far."""
    for where in ({"server": server.address}, {"url": server.url}):
        with pytest.raises(client.ServingError, match="size must be between") as e:
            client.stylize(*pngs, **where, iterations=7, chunk=3, size=2000, progress=False)
        assert not isinstance(e.value, client.RunFailed) and "steps 0-3" not in str(e.value)
        assert e.value.code in ("INVALID_ARGUMENT", "400")
    # The server, reached through a forwarder that goes away after the first part: to the
    # client, a server that stopped (a second server costs a model load).
    with Proxy(server.address) as gone:
        with pytest.raises(client.RunFailed, match="steps 3-6 of 7 failed: cannot reach") as e:
            client.stylize(
                *pngs, server=gone.address, iterations=7, chunk=3, retries=1, progress=False,
                callback=lambda *_: gone.close(),
            )  # fmt: skip
    assert e.value.code == "UNAVAILABLE" and e.value.step == 3 and e.value.image.size == ANSWER_SIZE


def test_a_server_that_stops_mid_run_hands_over_to_the_next(server, pngs):
    quiet = {"iterations": 7, "chunk": 3, "progress": False}
    parts, _ = client.stylize(*pngs, server=server.address, **quiet)
    with Proxy(server.address) as first:
        seen = []

        def stop_the_first(step, loss, image):
            seen.append(step)
            first.close()

        moved, _ = client.stylize(
            *pngs, server=[first.address, server.address], callback=stop_the_first, **quiet
        )
    assert seen == [3, 6, 7]
    np.testing.assert_array_equal(np.asarray(moved), np.asarray(parts))


def _ctrl_c_during_part(monkeypatch, part: int, presses: int):
    """Make Ctrl-C arrive ``presses`` times while part number ``part`` (from 1) is in flight;
    its request waits 1.5 s when pressed twice (so it cannot end between the presses)."""
    import _thread

    real = client._Grpc.call
    calls, pressed = [], []

    def call(self, *args):
        calls.append(args)
        if len(calls) == part:
            for _ in range(presses):
                time.sleep(0.3)
                pressed.append(time.monotonic())
                _thread.interrupt_main()  # what a SIGINT does
            if presses > 1:
                time.sleep(1.5)
        return real(self, *args)

    monkeypatch.setattr(client._Grpc, "call", call)
    return calls, pressed


#: The run the Ctrl-C tests interrupt: 9 steps in parts of 3.
NINE_IN_THREES = {"iterations": 9, "chunk": 3, "progress": False}


@pytest.fixture(scope="module")
def nine_in_threes(server, pngs) -> list:
    """The image after each part of ``NINE_IN_THREES``, run without interruption."""
    seen = []
    client.stylize(
        *pngs, server=server.address, callback=lambda *a: seen.append(a[2]), **NINE_IN_THREES
    )
    return seen


def test_ctrl_c_lets_the_part_in_flight_finish(server, pngs, nine_in_threes, monkeypatch, capsys):
    calls, _ = _ctrl_c_during_part(monkeypatch, part=2, presses=1)
    with pytest.raises(tfstyle.Interrupted) as e:
        client.stylize(*pngs, server=server.address, **NINE_IN_THREES)
    assert len(calls) == 2 and (e.value.step, e.value.iterations) == (6, 9)
    np.testing.assert_array_equal(np.asarray(e.value.image), np.asarray(nine_in_threes[1]))
    err = capsys.readouterr().err
    assert "Ctrl-C: stopping when steps 3-6 are done" in err and "Ctrl-C again" in err


def test_a_second_ctrl_c_stops_at_once(server, pngs, nine_in_threes, monkeypatch):
    _, pressed = _ctrl_c_during_part(monkeypatch, part=2, presses=2)
    with pytest.raises(tfstyle.Interrupted) as e:
        client.stylize(*pngs, server=server.address, **NINE_IN_THREES)
    assert time.monotonic() - pressed[-1] < 1.0  # the part in flight waits 1.5 s more
    assert e.value.step == 3
    np.testing.assert_array_equal(np.asarray(e.value.image), np.asarray(nine_in_threes[0]))


def test_concurrent_requests_are_independent(server, pngs):
    jobs = [
        {
            "seed": k,
            "init": "noise" if k % 2 else "style-mean",
            "size": 24 + 4 * (k % 3),
            "style_weight": 10.0 ** (k % 4),
        }
        for k in range(8)
    ]

    def run(options):
        image, loss = client.predict(
            *pngs,
            server=server.address,
            iterations=3,
            signature_name=sig.STYLIZE_SIGNATURE,
            **options,
        )
        return np.asarray(image), loss

    alone = [run(job) for job in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(run, jobs))
    for (a, loss_a), (b, loss_b) in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)
        assert loss_a == loss_b
    assert len({a.tobytes() for a, _ in alone}) == len(jobs)  # the inputs really differed


@pytest.mark.parametrize(
    "change, code",
    [
        ({sig.STYLE: None}, grpc.StatusCode.INVALID_ARGUMENT),  # missing input
        ({"extra": np.int32(1)}, grpc.StatusCode.INVALID_ARGUMENT),  # unknown input
        ({sig.ITERATIONS: np.float32(2.0)}, grpc.StatusCode.INVALID_ARGUMENT),  # wrong dtype
        ({sig.ITERATIONS: np.array([2], np.int32)}, grpc.StatusCode.INVALID_ARGUMENT),  # shape
        ({sig.CONTENT: b"definitely not an image"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({sig.ITERATIONS: np.int32(-1)}, grpc.StatusCode.INVALID_ARGUMENT),
        (
            {sig.ITERATIONS: np.int32(export.DEFAULT_MAX_ITERATIONS + 1)},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ({"model": "no_such_model"}, grpc.StatusCode.NOT_FOUND),
        ({"signature_name": "no_such_signature"}, grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_bad_requests_get_tf_serving_codes_and_server_keeps_serving(stub, pngs, change, code):
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(raw_request(pngs, **change), timeout=60)
    assert err.value.code() == code, err.value.details()
    response = stub.Predict(raw_request(pngs), timeout=60)  # still serving
    assert pixels({sig.IMAGE_BYTES: response.outputs[sig.IMAGE_BYTES].string_val[0]}).shape == (
        *ANSWER_SIZE[::-1], 3,
    )  # fmt: skip


def test_a_parts_deadline_counts_its_own_work_at_its_size():
    # A part's own work (targets, the closing objective) grows with its area as its steps do:
    # a 4096 px part of one step outlived a deadline that counted the step alone (700 s)
    base, per = client.DEADLINE_BASE_S, client.DEADLINE_PER_ITERATION_S
    assert client.deadline_for(0, 512) - base == client.DEADLINE_PART_STEPS * per > 0
    assert client.deadline_for(1, 4096) - base == 64 * (client.deadline_for(1, 512) - base)
    assert client.deadline_for(1, 4096) > 2 * 700
    assert client.deadline_for(30, 256) == client.deadline_for(30, 512)  # no less below 512 px


def test_client_errors_are_one_line(server, pngs):
    with pytest.raises(client.ServingError, match="model 'nope' not found") as err:
        client.predict(*pngs, server=server.address, iterations=1, model="nope")
    assert err.value.code == "NOT_FOUND" and "\n" not in str(err.value)
    with pytest.raises(client.ServingError, match="iterations must be between") as err:
        client.predict(*pngs, server=server.address, iterations=10**6)
    assert "\n" not in str(err.value)
    with pytest.raises(client.ServingError, match="raise the timeout") as err:
        client.predict(*pngs, server=server.address, iterations=50, timeout=0.05)
    assert err.value.code == "DEADLINE_EXCEEDED"
    # Bytes of no image are refused by the client, named; a broken PNG by the server.
    with pytest.raises(ValueError, match="content: the bytes given are not an encoded image"):
        client.predict_rest(b"nonsense", pngs[1], url=server.url, iterations=1)
    with pytest.raises(client.ServingError, match="HTTP 400 .*content: "):
        client.predict_rest(pngs[0][:40], pngs[1], url=server.url, iterations=1)
    with pytest.raises(client.ServingError, match="HTTP 404"):
        client.predict_rest(*pngs, url=server.url, iterations=1, model="nope")
    with pytest.raises(client.ServingError, match="cannot reach a model server"):
        client.predict(*pngs, server=f"127.0.0.1:{free_port()}", iterations=1, retries=0)
    with pytest.raises(ValueError, match="need signature_name='stylize'"):
        client.predict(*pngs, server=server.address, iterations=1, size=32)


def image_size(path) -> tuple:
    with PIL.Image.open(path) as image:
        return image.size


def test_cli_request_and_status(server, pngs, tmp_path, capsys):
    from tfstyle import cli

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    content.write_bytes(pngs[0])
    style.write_bytes(pngs[1])
    out = tmp_path / "out.png"
    argv = [
        "request",
        str(content),
        str(style),
        "-o",
        str(out),
        "--server",
        server.address,
        "-q",
        "--iterations",
        "2",
    ]
    assert cli.main(argv) == 0
    assert image_size(out) == ANSWER_SIZE
    rest = [a for a in argv if a not in ("--server", server.address)]
    assert cli.main([*rest, "--rest", server.url, "--size", "32", "--preserve-colors", "true"]) == 0
    assert image_size(out) == (32, 24)
    assert cli.main([*argv, "--rest", server.url]) == 1  # one transport, not two
    assert "give one of them" in capsys.readouterr().err
    for flag, value in (("--server", ""), ("--rest", " ")):  # an empty variable, not the default
        assert cli.main([*rest, flag, value]) == 1
        assert f"{flag} must be" in capsys.readouterr().err
    assert cli.main(["status", "--server", server.address]) == 0
    assert "tfstyle version 1: AVAILABLE" in capsys.readouterr().out
    assert cli.main([*argv[:-1], "50", "--timeout", "0.05"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "raise the timeout" in err[0]
    # More iterations than the model allows: the server's reason, not a failed part 0-30.
    assert cli.main([*argv[:-1], str(10**6)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("tfstyle: error: the server rejected the request: iterations must")
    assert image_size(out) == (32, 24)  # the last good run's image, untouched


def test_cli_request_ctrl_c_writes_the_image_so_far(server, pngs, tmp_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    content.write_bytes(pngs[0])
    style.write_bytes(pngs[1])
    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfstyle", "request", str(content), str(style), "-o", str(out),
         "--server", server.address, "--iterations", "5000", "--chunk", "2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen, deadline = "", time.monotonic() + 120
    while "4/5000" not in seen:  # the progress bar: two parts done
        assert proc.poll() is None and time.monotonic() < deadline, seen
        seen += proc.stderr.read(1)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    err = seen + proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 5
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"tfstyle: error: interrupted after step \d+ of 5000; wrote the image so far to {out}",
        last,
    ), last
    assert image_size(out) == ANSWER_SIZE
    # The cancelled part does not hold the server up.
    image, _ = client.predict(*pngs, server=server.address, iterations=1)
    assert image.size == ANSWER_SIZE


def test_new_version_is_picked_up_once_complete(server, pngs):
    # TF Serving picks up any numeric directory and retries a failed load
    # (--max_num_load_retries 5, every --load_retry_interval_micros): a version directory still
    # being written fails, then loads. Until then the old version is served.
    base = server.base_path
    os.makedirs(os.path.join(base, "2"))  # nothing in it yet
    time.sleep(1.5)  # found, tried, failed: retrying
    status = client.model_status(server.address, sig.MODEL_NAME)
    assert {"version": 1, "state": "AVAILABLE", "error": ""} in status
    os.rmdir(os.path.join(base, "2"))
    _copy_version(server, base, 2)
    status = server.wait_for(2)
    assert {"version": 1, "state": "END", "error": ""} in status  # latest-version policy
    image, _ = client.predict(*pngs, server=server.address, iterations=1, version=2)
    assert image.size == ANSWER_SIZE
    with pytest.raises(client.ServingError, match="not found"):
        client.predict(*pngs, server=server.address, iterations=1, version=1)


def test_warmup_file_replays_through_session(server, exported):
    # The server's copy of the shared export holds the file, and the server replayed both
    # requests through its session while loading (a request that fails fails the load).
    assert "version 1 (2 warm-up requests)" in server.read_log()
    version = os.path.join(exported, "1")
    path = os.path.join(version, sig.WARMUP_FILE)
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert len(records) == 2
    for record in records:
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        if request.model_spec.signature_name == sig.STYLIZE_SIGNATURE:
            # Every input, none left to the signature's defaults (TF Serving < 2.14).
            part = {sig.START_STEP, sig.STOP_STEP, sig.RESUME_BYTES}
            assert set(request.inputs) == {sig.CONTENT, sig.STYLE, sig.ITERATIONS} | set(
                options.REQUEST_OPTIONS
            ) | {sig.RETURN_IMAGE} | part | {sig.MASK, sig.CONTENT_MASK, sig.STYLE_MASK}
        else:
            assert set(request.inputs) == {sig.CONTENT, sig.STYLE, sig.ITERATIONS}


def _copy_version(server, base, version: int) -> None:
    copy_model(server.base_path, base, (version,))  # no warm-up: 7 s a load, tested elsewhere


def test_version_that_never_loads_reports_its_error_code(server):
    # On the module's server (TF Serving's 5 load retries, every 0.5 s here): a version number
    # no other test uses, whose directory stays empty (no saved_model.pb), removed at the end
    # so that the version served before is the latest again, whichever test runs first.
    base = server.base_path
    before = client.model_status(server.address, sig.MODEL_NAME)
    (served,) = [s["version"] for s in before if s["state"] == "AVAILABLE"]
    never = os.path.join(base, "9")
    os.makedirs(never)
    try:
        entry, end = None, time.monotonic() + 60
        while time.monotonic() < end:
            url = f"{server.url}/v1/models/{sig.MODEL_NAME}/versions/9"
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    (entry,) = json.loads(r.read())["model_version_status"]
                if entry["state"] == "END":
                    break
            except urllib.error.HTTPError:
                pass  # not found yet
            time.sleep(0.3)
        assert entry and entry["state"] == "END", entry
        assert entry["status"]["error_code"] == "NOT_FOUND", entry
        assert entry["status"]["error_message"]
        status = client.model_status(server.address, sig.MODEL_NAME)
        assert {"version": served, "state": "AVAILABLE", "error": ""} in status  # still served
    finally:
        os.rmdir(never)


def test_a_model_that_fails_its_first_load_stops_the_server(server, tmp_path):
    base = tmp_path / sig.MODEL_NAME
    os.makedirs(base / "1")  # no saved_model.pb
    with ModelServer(base, "--max_num_load_retries=1", command=server.command) as srv:
        code = srv.process.wait(timeout=120)
        log = srv.read_log()
    assert code != 0
    assert "Failed to start server. Error: " in log
    assert f"Loading servable: {{name: {sig.MODEL_NAME} version: 1}} failed" in log


def test_model_config_file(tmp_path, pngs, exported):
    base = copy_model(exported, tmp_path / "models" / "styler")
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "styler" base_path: "{base}" '
        'model_platform: "tensorflow" } }'
    )
    port = free_port()
    log = open(tmp_path / "log.txt", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [*STANDIN, "--host=127.0.0.1", f"--port={port}", f"--model_config_file={config}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        end = time.monotonic() + 120
        while True:
            try:
                client.model_status(f"127.0.0.1:{port}", "styler", timeout=2)
                break
            except client.ServingError:
                assert time.monotonic() < end and process.poll() is None
                time.sleep(0.3)
        image, _ = client.predict(*pngs, server=f"127.0.0.1:{port}", iterations=1, model="styler")
        assert image.size == ANSWER_SIZE
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        log.close()


def _mask_pngs() -> dict:
    """The masks of a request for the seeded pair (content 64 x 48, style 64 x 64): the style
    on the left half, the content kept in a block, the style's top half."""
    content = np.zeros((48, 64, 3))
    content[:, :32] = 1.0
    weight = np.full((48, 64, 3), 0.25)
    weight[10:30, 20:40] = 1.0
    region = np.zeros((64, 64, 3))
    region[:32] = 1.0
    return {sig.MASK: png_bytes(content), sig.CONTENT_MASK: png_bytes(weight),
            sig.STYLE_MASK: png_bytes(region)}  # fmt: skip


def _api_masked(pngs, iterations, masks: dict, **options) -> np.ndarray:
    """``transfer`` with the request's masks under the API's names."""
    names = {sig.MASK: "masks", sig.CONTENT_MASK: "content_mask", sig.STYLE_MASK: "style_masks"}
    given = {names[k]: [v] if names[k].endswith("s") else v for k, v in masks.items()}
    return api_png(pngs, iterations, **given, **options)


def test_served_masks_equal_the_api_over_grpc_rest_and_the_cli(server, pngs, tmp_path):
    masks = _mask_pngs()
    options = {"style_weight": 1e3, "seed": 5}
    every, _ = client.predict(*pngs, server=server.address, iterations=3,
                              signature_name=sig.STYLIZE_SIGNATURE, **masks, **options)  # fmt: skip
    expected = _api_masked(pngs, 3, masks, **options)
    np.testing.assert_array_equal(np.asarray(every), expected)
    plain = api_png(pngs, 3, **options)
    assert np.abs(expected.astype(int) - plain).max() > 10  # the masks change the result
    # One mask alone (the others empty: ones, the same pixels as the API without them), REST.
    one = {sig.MASK: masks[sig.MASK]}
    stylize = {"signature_name": sig.STYLIZE_SIGNATURE, **options}
    rest, _ = client.predict_rest(*pngs, url=server.url, iterations=3, **one, **stylize)
    np.testing.assert_array_equal(np.asarray(rest), _api_masked(pngs, 3, one, **options))
    # The CLI sends them from files (its run in parts: one part of 3 steps here).
    from tfstyle import cli

    paths = []
    for name, data in [("c", pngs[0]), ("s", pngs[1]), *masks.items()]:
        (tmp_path / f"{name}.png").write_bytes(data)
        paths.append(str(tmp_path / f"{name}.png"))
    out = tmp_path / "out.png"
    argv = ["request", *paths[:2], "-o", str(out), "--server", server.address, "-q",
            "--iterations", "3", "--chunk", "3", "--style-weight", "1e3", "--seed", "5",
            "--mask", paths[2], "--content-mask", paths[3], "--style-mask", paths[4]]  # fmt: skip
    assert cli.main(argv) == 0
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(out)), expected)
    # Nothing of the masks is overwritten by the output, and a mask for serving_default (which
    # takes none) is refused before a request.
    assert cli.main([*argv[:3], paths[2], *argv[4:]]) == 1
    with pytest.raises(ValueError, match="need signature_name='stylize'"):
        client.predict(*pngs, server=server.address, iterations=1, **one)
    # A bad mask is one line from the server, which keeps serving.
    with pytest.raises(client.ServingError) as err:
        client.predict(*pngs, server=server.address, iterations=1,
                       signature_name=sig.STYLIZE_SIGNATURE, mask=pngs[1])  # fmt: skip
    assert "mask: a 64x64 mask for a 64x48 content image; a mask must have the content's" in str(
        err.value
    ) and "\n" not in str(err.value)
    image, _ = client.predict(*pngs, server=server.address, iterations=3)
    np.testing.assert_array_equal(np.asarray(image), api_png(pngs, 3))


def test_the_page_on_a_served_model_paints_what_the_client_does(server, pngs, tmp_path):
    """``tfstyle app --server``'s engine: the controls left empty take the model's values, the
    image shown as it goes, and the result the client's own run in parts."""
    import threading

    pytest.importorskip("gradio", reason='the page needs the "app" extra')
    from tfstyle import app

    paths = []
    for name, data in zip(("content.png", "style.png"), pngs, strict=True):
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    engine = app.Served(server=server.address, chunk=2)
    rows = engine.option_rows()
    names = {r.name for r in rows}  # what a request may set; not what the export fixed
    assert "iterations" in names and names <= {"iterations", *options.REQUEST_OPTIONS}
    assert "size" in names and "weights" not in names
    raw = [5 if r.name == "iterations" else "" for r in rows]  # empty: the model's
    shown = list(app.paint(engine, rows, paths[0], paths[1], None, None, raw,
                           threading.Event(), str(tmp_path)))  # fmt: skip
    assert [s.text.split(" · ")[0] for s in shown[:-1]] == [f"step {k} of 5" for k in (2, 4, 5)]
    final = shown[-1]
    assert final.done and final.text.startswith("done")
    expected, _ = client.stylize(*pngs, server=server.address, iterations=5, chunk=2,
                                 progress=False)  # fmt: skip
    with PIL.Image.open(final.files[0]) as png:
        np.testing.assert_array_equal(np.asarray(png), np.asarray(expected))
    # A second style image is one line, before any request.
    with pytest.raises(ValueError, match="a served model takes one style image; got 2"):
        next(app.paint(engine, rows, paths[0], paths, None, None, raw, threading.Event(),
                       str(tmp_path)))  # fmt: skip
