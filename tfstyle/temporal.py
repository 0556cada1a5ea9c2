"""Temporal consistency for video (Ruder, Dosovitskiy and Brox 2016, "Artistic style transfer for
videos"): optical flow between consecutive content frames, the mask of pixels whose flow can be
trusted, and the previous stylised frame warped onto the current one.

Frame ``t`` starts from frame ``t - 1``'s result warped by the flow, and its objective gains

    L_temporal = temporal_weight * AREA_REFERENCE / (H * W) * sum(c * (x - warp(x_{t-1}))^2)

(``Objective``'s ``temporal`` term), ``c`` the consistency mask: 1 where the backward flow
(``t -> t-1``) and the forward flow (``t-1 -> t``) agree and no motion boundary is crossed, 0
where a region appears or is hidden (Ruder et al., section 3.1).

The flow comes from OpenCV's DIS optical flow (``opencv-python-headless``, the ``video`` extra),
the warp from TensorFlow (a bilinear gather: it can run in a graph).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Ruder et al.'s thresholds: forward-backward disagreement |w + w'|^2 > A (|w|^2 + |w'|^2) + B,
#: and motion boundaries |grad u|^2 + |grad v|^2 > C |w|^2 + D.
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
_MB_RELATIVE, _MB_ABSOLUTE = 0.01, 0.002


def _cv2():
    from tfstyle import extras, video_io

    return extras.need("cv2", *video_io.EXTRA)


def _gray(frame: np.ndarray) -> np.ndarray:
    """An RGB frame (uint8, or float in [0, 1]) as 8-bit grey for the flow."""
    if frame.dtype != np.uint8:
        frame = np.clip(np.round(np.asarray(frame, np.float32) * 255), 0, 255).astype(np.uint8)
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The dense optical flow ``(H, W, 2)`` (x, y) from ``source`` to ``target`` (RGB frames of
    one size): the pixel at ``p`` in ``source`` is at ``p + flow[p]`` in ``target``. OpenCV's
    DIS flow, medium preset, float32."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(source), _gray(target), None).astype(np.float32)


def warp(image, flow_to_previous) -> tf.Tensor:
    """``image`` ``(H, W, C)`` sampled at ``p + flow_to_previous[p]`` for every pixel ``p``
    (bilinear; positions outside the image take the nearest edge pixel): frame ``t - 1``'s
    image brought onto frame ``t`` with the flow ``t -> t-1``. TensorFlow ops."""
    image = tf.convert_to_tensor(image, tf.float32)
    flow_to_previous = tf.convert_to_tensor(flow_to_previous, tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    ys, xs = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    x = tf.clip_by_value(xs + flow_to_previous[..., 0], 0.0, tf.cast(width - 1, tf.float32))
    y = tf.clip_by_value(ys + flow_to_previous[..., 1], 0.0, tf.cast(height - 1, tf.float32))
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0i, y0i = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1i, y1i = tf.minimum(x0i + 1, width - 1), tf.minimum(y0i + 1, height - 1)

    def at(yi, xi):
        return tf.gather_nd(image, tf.stack([yi, xi], axis=-1))

    top = at(y0i, x0i) * (1 - fx) + at(y0i, x1i) * fx
    bottom = at(y1i, x0i) * (1 - fx) + at(y1i, x1i) * fx
    return top * (1 - fy) + bottom * fy


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s mask ``(H, W, 1)`` for frame ``t``: 1 where its flow to frame ``t - 1``
    (``backward``, ``(H, W, 2)``) can be trusted, 0 where it cannot: the forward flow (``t-1 ->
    t``) at the pixel it points to does not bring it back (a region that appears, or was
    hidden), the flow changes sharply there (a motion boundary), or it points outside frame
    ``t - 1`` (what enters the frame)."""
    forward_there = warp(forward, backward).numpy()
    both = backward + forward_there
    disagree = (
        np.sum(both**2, -1)
        > _FB_RELATIVE * (np.sum(backward**2, -1) + np.sum(forward_there**2, -1)) + _FB_ABSOLUTE
    )
    du = np.gradient(backward[..., 0])
    dv = np.gradient(backward[..., 1])
    gradient = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
    boundary = gradient > _MB_RELATIVE * np.sum(backward**2, -1) + _MB_ABSOLUTE
    height, width = backward.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    # More than half a pixel outside frame t - 1: what enters the frame.
    outside = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    return (~(disagree | boundary | outside)).astype(np.float32)[..., None]


def temporal_error(previous: np.ndarray, current: np.ndarray, backward, mask) -> float:
    """The mean squared difference over consistent pixels between frame ``current`` and the
    ``previous`` frame warped onto it (``backward``: the content's flow ``t -> t-1``; ``mask``:
    ``consistency``): how much a stylised clip flickers where the content does not change.
    Images float in [0, 1]."""
    warped = warp(previous, backward).numpy()
    diff = (np.asarray(current, np.float32) - warped) ** 2 * mask
    return float(diff.sum() / max(mask.sum() * diff.shape[-1], 1.0))
