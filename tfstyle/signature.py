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
# A run in parts (chunks), each a request: the part takes the steps [START_STEP, STOP_STEP) of
# the run's ITERATIONS, from the RESUME_BYTES output of the part that stopped at START_STEP.
START_STEP = "start_step"  # DT_INT32 scalar, default 0
STOP_STEP = "stop_step"  # DT_INT32 scalar, default -1: ITERATIONS
# DT_STRING scalar, default "": needed when START_STEP > 0. (Named "_bytes": TF Serving's REST
# API answers a string output as base64 only under such a name.)
RESUME_BYTES = "resume_bytes"

IMAGE_BYTES = "image_bytes"  # DT_STRING scalar: PNG
#: DT_UINT8 (H, W, 3) with RETURN_IMAGE, else (0, 0, 3): a 1024 px result as uint8 is 3 MiB of
#: pixels, over 5 MiB as TF Serving encodes it (int_val) and 110 MiB of REST JSON.
IMAGE = "image"
LOSS = "loss"  # DT_FLOAT scalar: the objective at the returned image (before colour transfer)
# The stylize signature also outputs RESUME_BYTES: DT_STRING scalar, the image reached, at the
# scale reached (before colour transfer), bit for bit (``images.encode_exact``: float32 in a
# 16-bit PNG), to send as the next part's RESUME_BYTES input; "" when the part ends the run. The
# input also takes an ordinary image (PNG, JPEG, ...), to continue from. IMAGE_BYTES is the
# result so far at the output's size.

#: What exported the model: TensorFlow, Keras and tfstyle versions and the export's options.
METADATA_FILE = "assets.extra/tfstyle_export.json"
#: File of warm-up requests TF Serving replays on load (inside the version directory).
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
