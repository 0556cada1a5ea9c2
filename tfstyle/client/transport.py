"""Where requests go: a list of targets (servers or URLs) tried in turn; ``grpc_api`` and
``rest_api`` say how one request travels."""

from __future__ import annotations

import io
import time

import PIL.Image

from tfstyle import signature as sig
from tfstyle.client.arguments import RETRYABLE, ServingError, describe


class Transport:
    """Requests to ``targets`` (servers or URLs), tried in turn; subclasses define ``call``
    (one request to one target: ``{output: value}`` without the raw ``image``) and
    ``defaults`` (a signature's default inputs)."""

    def __init__(self, targets: list[str]):
        self.targets = targets
        self.where = 0  # the target that took the last request

    def call(self, target: str, model: str, version, inputs: dict, timeout: float,
             signature_name: str = sig.STYLIZE_SIGNATURE) -> dict:  # fmt: skip
        raise NotImplementedError

    def defaults(self, model: str, version, timeout: float,
                 signature_name: str = sig.STYLIZE_SIGNATURE) -> dict:  # fmt: skip
        raise NotImplementedError

    def send(self, model, version, signature_name: str, inputs: dict, timeout: float,
             retries: int, retry_on=RETRYABLE, show=lambda target: None,
             stopping=lambda: False) -> tuple[PIL.Image.Image, float, bytes]:  # fmt: skip
        """``(image, loss, resume_bytes)`` of one request, tried again on the next target after
        a failure in ``retry_on`` (up to ``retries`` times, unless ``stopping()``); ``show(target)``
        before each attempt."""
        for attempt in range(retries + 1):
            target = self.targets[(self.where + attempt) % len(self.targets)]
            show(target)
            try:
                outputs = self.call(target, model, version, inputs, timeout, signature_name)
                break
            except ServingError as err:
                self.forget(target)  # a new connection next time
                if err.code not in retry_on or attempt == retries or stopping():
                    raise
                if len(self.targets) == 1:
                    time.sleep(0.5 * 2**attempt)
        self.where = (self.where + attempt) % len(self.targets)  # stay where it worked
        try:
            image, loss = open_png(outputs[sig.IMAGE_BYTES]), float(outputs[sig.LOSS])
        except (KeyError, ValueError, TypeError, OSError) as err:
            raise ServingError(f"unexpected answer from {target}: {describe(err)}") from None
        return image, loss, outputs.get(sig.RESUME_BYTES, b"")

    def forget(self, target: str) -> None:
        """Drop the connection to ``target``, if one is kept."""

    def close(self) -> None:
        for target in self.targets:
            self.forget(target)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_png(data: bytes) -> PIL.Image.Image:
    image = PIL.Image.open(io.BytesIO(data))
    image.load()
    return image
