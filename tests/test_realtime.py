"""Real-time mode (``tfstyle.realtime``): the network, a training step with the optimisation's
objective, resume bit for bit, the model directory, and bad input."""

import json
import os
import shutil

import numpy as np
import PIL.Image
import pytest
from helpers import smooth_image

pytestmark = pytest.mark.slow
#: A shallow objective (the extractor stops at block2): the mechanics, at a fraction of the cost.
SHALLOW = {"weights": None, "content_layers": ["block2_conv2"],
           "style_layers": ["block1_conv1", "block2_conv1"]}  # fmt: skip
RUN = {"size": 32, "batch_size": 2, "checkpoint_every": 1, "progress": False, **SHALLOW}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("photos")
    for k, (height, width) in enumerate([(40, 48), (48, 40), (36, 64)]):
        array = (smooth_image(k + 5, height, width) * 255).round().astype(np.uint8)
        PIL.Image.fromarray(array).save(folder / f"p{k}.png")
    (folder / "notes.txt").write_text("not a photo")  # not an image extension: not listed
    return str(folder)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    return smooth_image(1, 64, 64)


def test_the_network_keeps_any_size_and_round_trips_through_keras_files(tmp_path):
    import keras

    from tfstyle import realtime

    net = realtime.transform_net(seed=0)
    assert 1.6e6 < net.count_params() < 1.8e6  # Johnson et al.'s 1.68 M
    for height, width in [(32, 32), (33, 47), (64, 18)]:  # not multiples of 4 too
        x = np.random.default_rng(0).random((2, height, width, 3), dtype=np.float32)
        y = np.asarray(net(x))
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    net.save(tmp_path / "n.keras")
    again = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_array_equal(np.asarray(again(x)), y)
    # Instance normalisation: an image's output does not depend on the others in its batch.
    np.testing.assert_allclose(np.asarray(net(x[:1])), y[:1], atol=1e-6)


def test_a_training_step_lowers_the_optimisations_objective(style):
    import tensorflow as tf

    from tfstyle import options, pipeline, realtime

    opts = options.Options(**SHALLOW, precision="float32")
    trainer = realtime.Trainer(style, opts, 32, 1e-3, 0)
    batch = tf.constant(np.stack([smooth_image(k, 32, 32) for k in (3, 4)]))
    before = trainer.losses(batch, trainer.net(batch))
    for _ in range(8):
        trainer.step(batch)
    after = trainer.losses(batch, trainer.net(batch))
    assert float(after["total"]) < 0.8 * float(before["total"])
    # Each image's loss is the optimisation's objective with that image as the content.
    pipe = pipeline.get(opts)
    image = trainer.net(batch)[1:2]
    targets = pipe.objective.targets(batch[1], [], None, style=trainer.style)
    alone = pipe.objective.terms(image, targets, trainer.weights)["total"]
    both = trainer.losses(batch, trainer.net(batch))["total"]
    first = pipe.objective.terms(
        trainer.net(batch)[:1],
        pipe.objective.targets(batch[0], [], None, style=trainer.style),
        trainer.weights,
    )["total"]
    assert float(both) == pytest.approx((float(alone) + float(first)) / 2, rel=1e-5)


@pytest.fixture(scope="module")
def style_file(tmp_path_factory, style) -> str:
    path = tmp_path_factory.mktemp("style") / "style.png"
    PIL.Image.fromarray((style * 255).round().astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, photos, style_file) -> str:
    """A model directory: 4 steps in one go."""
    from tfstyle import realtime

    return realtime.train(style_file, photos, tmp_path_factory.mktemp("m") / "m", steps=4, **RUN)


def test_a_resumed_training_gives_the_uninterrupted_runs_weights(
    photos, style_file, tmp_path, trained
):
    import keras

    from tfstyle import cli, realtime

    # The first two steps from the command line, as a user starts it (the same options): one
    # epoch, 3 photos in batches of 2.
    argv = ["train", style_file, "-o", str(tmp_path / "resumed"), "--images", photos,
            "--size", "32", "--batch-size", "2", "--epochs", "1", "--checkpoint-every", "1",
            "--weights", "none", "--content-layers", *SHALLOW["content_layers"],
            "--style-layers", *SHALLOW["style_layers"], "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    assert json.loads((tmp_path / "resumed" / realtime.MODEL_FILE).read_text())["steps_done"] == 2
    realtime.train(style_file, photos, tmp_path / "resumed", steps=4, **RUN)  # the same, longer
    nets = [keras.models.load_model(os.path.join(d, realtime.NETWORK_FILE))
            for d in (trained, tmp_path / "resumed")]  # fmt: skip
    for a, b in zip(*(n.get_weights() for n in nets), strict=True):
        np.testing.assert_array_equal(a, b)
    described = realtime.describe(tmp_path / "resumed")
    assert described["steps_done"] == 4 and described["training"]["images"] == 3
    assert (tmp_path / "resumed" / realtime.STYLE_FILE).is_file()
    assert os.listdir(tmp_path / "resumed" / "logs")  # TensorBoard's
    # Stylising: one forward pass, at the size asked for.
    image = realtime.stylize(os.path.join(photos, "p2.png"), tmp_path / "resumed", size=48)
    assert image.size == (48, 27)
    # Another style, or other options, in the same directory: refused, nothing mixed.
    with pytest.raises(ValueError, match="holds a training run of another style or other"):
        realtime.train(style_file, photos, tmp_path / "resumed", steps=5, **{**RUN, "seed": 1})


def test_bad_input_is_one_line(photos, style, tmp_path):
    from tfstyle import realtime

    (tmp_path / "empty").mkdir()
    cases = [
        ((style, tmp_path / "empty", tmp_path / "m"), {}, "images: no images in"),
        ((style, tmp_path / "none", tmp_path / "m"), {}, "is not a directory of images"),
        ((style, photos, tmp_path / "m"), {"batch_size": 0}, "batch_size must be between 1"),
        ((style, photos, tmp_path / "m"), {"style_scale": 0.1}, "style_scale"),
        ((b"junk", photos, tmp_path / "m"), {}, "style: "),
        ((style, photos, tmp_path / "m"), {"epochs": 0}, "epochs must be a finite number > 0"),
        ((style, photos, tmp_path / "m"), {"epochs": 1}, "give steps or epochs, not both"),
    ]
    for args, changes, said in cases:
        with pytest.raises(ValueError, match=said) as err:
            realtime.train(*args, **{**RUN, "steps": 1, **changes})
        assert "\n" not in str(err.value)
    assert not (tmp_path / "m").exists()  # refused before anything was written
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("a user's file")
    with pytest.raises(ValueError, match="holds other files"):
        realtime.train(style, photos, tmp_path / "other", steps=1, **RUN)
    # A model directory that is not one, of another format, or not finished: one line each.
    with pytest.raises(ValueError, match="is not a trained tfstyle model"):
        realtime.stylize(style, tmp_path / "other")
    # Not a directory, or not a path (probe 12: all three were "not a trained tfstyle model",
    # and a PathLike giving bytes got past the check)
    with pytest.raises(FileNotFoundError, match=r"^model: directory does not exist: .*nowhere'$"):
        realtime.stylize(style, tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match=r"^model: .*mine.txt' is a file, not a directory"):
        realtime.stylize(style, tmp_path / "other" / "mine.txt")

    class BytesPath:
        def __fspath__(self):
            return os.fsencode(tmp_path / "other")

    with pytest.raises(ValueError, match=r"^model: a trained model's directory \(a path\) is "):
        realtime.stylize(style, BytesPath())
    (tmp_path / "other" / realtime.MODEL_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="has format 99; this tfstyle reads format 1"):
        realtime.stylize(style, tmp_path / "other")
    (tmp_path / "other" / realtime.MODEL_FILE).unlink()
    os.mkfifo(tmp_path / "other" / realtime.MODEL_FILE)  # read, it would wait forever
    with pytest.raises(ValueError, match="is not a regular file"):
        realtime.stylize(style, tmp_path / "other")
    with pytest.raises(ValueError, match="is not a regular file"):  # probe 10: train waited
        realtime.train(style, photos, tmp_path / "other", steps=1, **RUN)
    (tmp_path / "other" / realtime.MODEL_FILE).unlink()
    for text, said in [("[]", "not a description"), ("{", "cannot be read"),
                       ('{"format": true}', "has format True")]:  # fmt: skip
        (tmp_path / "other" / realtime.MODEL_FILE).write_text(text)
        with pytest.raises(ValueError, match=said):
            realtime.stylize(style, tmp_path / "other")
    (tmp_path / "other" / realtime.MODEL_FILE).write_text('{"format": true}')
    with pytest.raises(ValueError, match="has format True; this tfstyle reads format 1"):
        realtime.train(style, photos, tmp_path / "other", steps=1, **RUN)
    # A run whose objective overflows: stopped, not saved as a network that paints black.
    with pytest.raises(ValueError, match="training diverged: the objective became inf at step 1"):
        realtime.train(style, photos, tmp_path / "m3", steps=2, **{**RUN, "style_weight": 1e35})
    assert not (tmp_path / "m3").exists()
    # Photos none of which can be read: one line before any work, and no directory left.
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="none of the 1 image files can be read"):
        realtime.train(style, tmp_path / "junk", tmp_path / "m2", steps=1, **RUN)
    assert not (tmp_path / "m2").exists()


def test_a_model_directory_in_the_photos_folder_is_not_trained_on(photos, tmp_path):
    from tfstyle import realtime

    shutil.copytree(photos, tmp_path / "photos")
    (tmp_path / "photos" / "model").mkdir()
    (tmp_path / "photos" / "model" / realtime.STYLE_FILE).write_bytes(b"")
    found = realtime.training_images(tmp_path / "photos", leave_out=tmp_path / "photos" / "model")
    assert [os.path.basename(p) for p in found] == ["p0.png", "p1.png", "p2.png"]
    # A run goes on in its directory whatever photos were added or removed meanwhile.
    described = {"format": 1, "training": {"size": 32, "images": 3, "images_dir": "a"}}
    other = {**described, "training": {"size": 32, "images": 4, "images_dir": "b"}}
    assert realtime._identity(described) == realtime._identity(other)
    assert realtime._identity(described) != realtime._identity(
        {**described, "training": {"size": 64, "images": 3}}
    )


def test_train_defaults_are_the_tables():
    import inspect

    from tfstyle import options, realtime

    params = inspect.signature(realtime.train).parameters
    for name, row in options.TRAIN_OPTIONS.items():
        assert params[name].default == row.default, name
    assert set(realtime.OBJECTIVE_OPTIONS) <= set(options.BY_NAME)


def test_the_exported_network_paints_what_the_python_api_does(trained, tmp_path, capsys):
    import io

    from helpers import png_bytes, session_run

    from tfstyle import cli, realtime
    from tfstyle import signature as sig

    # From the command line, as a user exports it (the API's realtime.export underneath).
    base = str(tmp_path / "fast")
    assert cli.main(["export", "--model", trained, "--model-dir", base, "--max-size", "40"]) == 0
    path = os.path.join(base, "1")
    capsys.readouterr()
    for flag, value in (("--size", "64"), ("--max-iterations", "9")):
        assert cli.main(["export", "--model", trained, "--model-dir", base, flag, value]) == 1
        assert f"{flag}: does not apply to --model" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(base, "2"))  # an option that does not apply: refused
    meta = json.loads((tmp_path / "fast" / "1" / sig.METADATA_FILE).read_text())
    assert meta["kind"] == "real-time" and meta["trained"]["steps_done"] == 4
    assert (tmp_path / "fast" / "1" / sig.WARMUP_FILE).is_file()
    pngs = [
        png_bytes(smooth_image(0, 36, 40)),
        png_bytes(smooth_image(2, 37, 29)),
        png_bytes(smooth_image(3, 48, 64)),
    ]  # fmt: skip  (the last above max_size)
    out = session_run(path, "serving_default", {realtime.IMAGES: pngs})  # as TF Serving loads
    served = [np.asarray(PIL.Image.open(io.BytesIO(png))) for png in out[realtime.IMAGES_BYTES]]
    for png, image in zip(pngs[:2], served, strict=False):
        np.testing.assert_array_equal(image, np.asarray(realtime.stylize(png, trained)))
    assert served[2].shape == (30, 40, 3)  # scaled down to max_size first
    np.testing.assert_array_equal(served[2], np.asarray(realtime.stylize(pngs[2], trained, 40)))


def test_tfstyle_transfer_paints_with_a_trained_model(trained, photos, tmp_path, style, capsys):
    import tfstyle
    from tfstyle import cli, realtime

    content, out = os.path.join(photos, "p2.png"), tmp_path / "out.png"
    argv = ["transfer", content, "--model", trained, "-o", str(out), "--size", "40", "-q"]
    assert cli.main(argv) == 0
    expected = np.asarray(realtime.stylize(content, trained, size=40))
    assert expected.shape == (22, 40, 3)  # 36 x 64 to a longer side of 40
    with PIL.Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), expected)
    capsys.readouterr()
    for extra in (["--iterations", "5"], ["--save-every", "2"]):  # not options of the network's
        assert cli.main([*argv[:-1], *extra]) == 1
        assert f"{extra[0]}: does not apply to --model" in capsys.readouterr().err
    assert cli.main(["transfer", content, content, *argv[2:]]) == 1  # a style with a model
    inside = os.path.join(trained, realtime.STYLE_FILE)  # probe 12: it replaced the model's style
    before = open(inside, "rb").read()
    assert cli.main(["transfer", content, "--model", trained, "-o", inside, "-q"]) == 1
    assert "is inside the model directory" in capsys.readouterr().err
    assert open(inside, "rb").read() == before
    # The Python API: the same pixels, the same refusals.
    image = tfstyle.transfer(content, model=trained, size=40)
    np.testing.assert_array_equal(np.asarray(image), expected)
    with pytest.raises(ValueError, match="^iterations: does not apply with model"):
        tfstyle.transfer(content, model=trained, size=40, iterations=5)
    with pytest.raises(ValueError, match="^masks: does not apply with model"):
        tfstyle.transfer(content, model=trained, masks=[np.ones((36, 64))])
    import tensorflow as tf

    with pytest.raises(ValueError, match="^init: does not apply with model"):  # probe 12
        tfstyle.transfer(content, model=trained, init=tf.constant(np.zeros((36, 64, 3))))
    with pytest.raises(ValueError, match="^style: given with model"):
        tfstyle.transfer(content, style, model=trained)
    with pytest.raises(ValueError, match="^model must be a model directory"):
        tfstyle.transfer(content, model=3)
    with pytest.raises(ValueError, match="^style must be an image"):
        tfstyle.transfer(content)  # neither a style nor a model
    with pytest.raises(ValueError, match="^model: a trained network paints with transfer"):
        tfstyle.Stylizer(style, model=trained)  # the optimisation's (video, batch) take none


def test_a_served_real_time_model_answers_grpc_rest_and_tfstyle_request(
    trained, exported, tmp_path, capsys
):
    from helpers import ModelServer, copy_model, png_bytes

    from tfstyle import cli, client, realtime

    base = realtime.export(trained, tmp_path / "served" / realtime.MODEL_NAME)
    pngs = [png_bytes(smooth_image(0, 36, 40)), png_bytes(smooth_image(2, 37, 29))]
    expected = [np.asarray(realtime.stylize(p, trained)) for p in pngs]
    # served beside the optimisation's model, in one models.config (as serving/README.md shows)
    models = {"tfstyle": copy_model(exported, tmp_path / "served" / "tfstyle"),
              realtime.MODEL_NAME: os.path.dirname(base)}  # fmt: skip
    config = tmp_path / "models.config"
    config.write_text("model_config_list { " + " ".join(
        f'config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" }}'
        for name, path in models.items()
    ) + " }")  # fmt: skip
    with ModelServer(base, model_name=realtime.MODEL_NAME, config_file=config) as server:
        server.wait_for()  # its warm-up request replayed
        assert client.model_status(server.address, "tfstyle")[0]["state"] == "AVAILABLE"
        for where in ({"server": server.address}, {"url": server.url}):
            answer = client.predict_realtime(pngs, **where)  # one batch, each its own size
            for image, want in zip(answer, expected, strict=True):
                np.testing.assert_array_equal(np.asarray(image), want)
        content, out = tmp_path / "c.png", tmp_path / "out.png"
        content.write_bytes(pngs[1])
        argv = ["request", str(content), "-o", str(out), "--server", server.address, "-q"]
        assert cli.main(argv) == 0  # no style image: the real-time model
        with PIL.Image.open(out) as written:
            np.testing.assert_array_equal(np.asarray(written), expected[1])
        capsys.readouterr()
        for extra in (["--iterations", "5"], ["--chunk", "3"], ["--size", "32"]):
            assert cli.main([*argv, *extra]) == 1  # the optimisation's, not its
            assert f"{extra[0]}: does not apply to a real-time model" in capsys.readouterr().err


def test_a_batch_paints_every_image_with_a_trained_model(trained, photos, tmp_path, capsys):
    pytest.importorskip("apache_beam", reason='batch needs the "beam" extra')
    from tfstyle import batch, cli, realtime

    counts = batch.run(photos, None, str(tmp_path / "out"), model=trained, size=40,
                       progress=False)  # fmt: skip
    assert (counts.done, counts.failed, counts.models_loaded) == (3, 0, 1)
    for k in range(3):
        with PIL.Image.open(tmp_path / "out" / f"p{k}.png.png") as written:
            expected = realtime.stylize(os.path.join(photos, f"p{k}.png"), trained, size=40)
            np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))
    with pytest.raises(ValueError, match="^iterations: does not apply with a model"):
        batch.run(photos, None, str(tmp_path / "o2"), model=trained, iterations=3)
    with pytest.raises(ValueError, match="^mask_dir: does not apply with a model"):
        batch.run(photos, None, str(tmp_path / "o2"), model=trained, mask_dir=photos)
    # the command names its flags, not the library's arguments (probe 12)
    argv = ["batch", photos, "-o", str(tmp_path / "o2"), "--model", trained]
    for extra, said in [(["--mask-dir", photos], "--mask-dir"), (["--iterations", "3"],
                        "--iterations"), (["--mask", photos], "--mask")]:  # fmt: skip
        assert cli.main([*argv, *extra]) == 1
        assert capsys.readouterr().err.startswith(f"tfstyle: error: {said}: does not apply with a ")
    assert not os.path.exists(tmp_path / "o2")
    with pytest.raises(ValueError, match="^OUT_DIR: .* is inside the model directory"):
        batch.run(photos, None, trained, model=trained)
    with pytest.raises(ValueError, match="^model_dir: .* is inside the model directory"):
        realtime.export(trained, os.path.join(trained, "served"))
    assert not os.path.exists(os.path.join(trained, "served"))


def test_tiles_cover_every_pixel_and_blend_to_the_whole(trained):
    import keras

    from tfstyle import realtime

    # A per-pixel network: tiles blended must give the whole image's output exactly.
    inputs = keras.Input((None, None, 3))
    per_pixel = keras.Model(inputs, keras.layers.Activation("sigmoid")(inputs * 3.0 - 1.0))
    image = smooth_image(4, 70, 93)
    whole = np.asarray(per_pixel(image[None]))[0]
    for tile, overlap in [(40, 8), (32, 16), (93, 8), (69, 10)]:
        starts = realtime.tile_starts(93, tile, overlap)
        assert starts[0] == 0 and starts[-1] == 93 - tile
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))
        tiled = realtime.tiled(per_pixel, image, tile, overlap)
        np.testing.assert_allclose(tiled, whole, atol=1e-6)
    # The trained network: tiles where the image is larger than tile_size, at the same size.
    painted = realtime.stylize(image, trained, tile_size=realtime.TILE_OVERLAP * 2, size=300)
    assert painted.size == (300, 226)
    with pytest.raises(ValueError, match="tile_size must be an integer of at least 256"):
        realtime.stylize(image, trained, tile_size=100)


def test_training_mirrored_on_two_devices_gives_the_one_device_network(
    trained, photos, style_file, tmp_path
):
    """tf.distribute: two logical CPU devices (set before TensorFlow starts: a fresh process),
    each half of every batch; the network equals the one-device run's to float rounding (the
    weights a following instance norm cancels, such as the convolutions' biases, get gradients
    of rounding noise, which Adam turns into steps either way: compared by what it paints)."""
    import subprocess
    import sys

    from tfstyle import realtime

    script = (
        "import sys, json, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "two = [tf.config.LogicalDeviceConfiguration()] * 2\n"
        "tf.config.set_logical_device_configuration(cpu, two)\n"
        "from tfstyle import realtime\n"
        "print('replicas', realtime._strategy('mirrored').num_replicas_in_sync)\n"
        "realtime.train(sys.argv[1], sys.argv[2], sys.argv[3], steps=4, distribute='mirrored',\n"
        "               **json.loads(sys.argv[4]))\n"
    )  # fmt: skip
    out = tmp_path / "mirrored"
    done = subprocess.run(
        [sys.executable, "-c", script, style_file, photos, str(out), json.dumps(RUN)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2" in done.stdout
    image = smooth_image(6, 40, 48)[None]
    one, two = (np.asarray(realtime.forward(realtime.network(d), image)) for d in (trained, out))
    assert np.abs(one - two).max() < 1e-4


def test_the_benchmark_script_runs_and_writes_its_results(tmp_path, capsys):
    """benchmarks/realtime.py at toy sizes: every section runs and writes what it measured."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    import realtime as bench  # benchmarks/realtime.py, not tfstyle.realtime

    photos = tmp_path / "photos"
    photos.mkdir()
    names = [*bench.HELD_OUT, "a.png", "b.jpg", "logo.png"]  # logo.png: not a photo, left out
    for k, name in enumerate(names):
        PIL.Image.fromarray((smooth_image(k, 40, 48) * 255).astype(np.uint8)).save(photos / name)
    out = tmp_path / "out"
    argv = ["--photos", str(photos), "--steps", "2", "--size", "32", "--batch-size", "2",
            "--sizes", "32", "40", "--batches", "1", "2", "--optimise-sizes", "32",
            "--quality-size", "32", "--iterations", "3", "--repeats", "1",
            "--content-weight", "5", "--cost-size", "32", "--cost-steps", "1",
            "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads((out / "realtime.json").read_text())
    cost = result["cost"]
    assert (cost["crop"], cost["batch_size"]) == (32, 4) and cost["cpu_s_per_step"] > 0
    # VGG16's forward pass is 15.5 G multiply-adds at 224 px (31 GFLOP); on 4 crops of 32 px
    # the benchmark's objective (the table's VGG19 layers) runs more than that share of it
    # forward alone, and the step adds the network and the backward passes: a count missing
    # the convolutions or their gradients would fall below
    assert cost["flops_per_step"] > 4 * (32 / 224) ** 2 * 15.5e9
    assert cost["gpu_minutes_estimated"]["T4 (8.1 TFLOPS float32)"] == pytest.approx(
        cost["steps"] * cost["flops_per_step"] / 4.05e12 / 60, abs=0.1
    )
    assert result["training"]["steps"] == 2 and result["training"]["images"] == 2
    assert result["training"]["content_weight"] == 5
    assert [r["size"] for r in result["latency"]] == [32, 40]
    assert all(r["served_s"] > 0 and r["in_process_s"] > 0 for r in result["latency"])
    assert "speedup" in result["latency"][0] and "speedup" not in result["latency"][1]
    assert [r["batch"] for r in result["throughput"]] == [1, 2]
    rows = result["quality"]
    assert [r["photo"] for r in rows] == sorted(bench.HELD_OUT)
    for row in rows:  # the optimisation lowers the objective it is judged by
        assert 0 < row["optimisation_to_the_end"] < row["content"]
        assert row["network"] > 0 and row["equal_time_steps"] >= 1
    with PIL.Image.open(out / "realtime.jpg") as strip:
        assert strip.width == 4 * 32  # photo | network | equal time | to the end
    assert "flags" in capsys.readouterr().out.lower()
