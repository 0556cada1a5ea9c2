"""Names shared by the exported SavedModel, the serving client and the tests: one place."""

MODEL_NAME = "tfstyle"
MODEL_DIR = "saved_models/tfstyle"

#: Signature with the export's options baked in: inputs content, style, iterations.
DEFAULT_SIGNATURE = "serving_default"
#: Signature with every per-request option as an input (those not sent take the export's value).
STYLIZE_SIGNATURE = "stylize"

CONTENT = "content"  # DT_STRING scalar: encoded JPEG/PNG/BMP/GIF bytes
STYLE = "style"  # DT_STRING scalar
ITERATIONS = "iterations"  # DT_INT32 scalar

# The stylize signature's optional inputs and their dtypes: ``tfstyle.options.REQUEST_OPTIONS``,
# and:
RETURN_IMAGE = "return_image"  # DT_BOOL scalar, default false: fill the raw IMAGE output

IMAGE_BYTES = "image_bytes"  # DT_STRING scalar: PNG
#: DT_UINT8 (H, W, 3) with RETURN_IMAGE, else (0, 0, 3): a 1024 px result as uint8 is 3 MiB of
#: pixels, over 5 MiB as TF Serving encodes it (int_val) and 110 MiB of REST JSON.
IMAGE = "image"
LOSS = "loss"  # DT_FLOAT scalar: the objective at the returned image (before colour transfer)

#: What exported the model: TensorFlow, Keras and tfstyle versions and the export's options.
METADATA_FILE = "assets.extra/tfstyle_export.json"
#: File of warm-up requests TF Serving replays on load (inside the version directory).
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
