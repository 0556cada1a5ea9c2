"""The run plan: which steps a call takes, at which scale, in what pieces. One plan, three users.

A run of ``iterations`` steps is split, level by level:

1. **requests** (``requests``): the served run in parts of at most ``chunk`` steps, each a
   request (``tfstyle.client.stylize``); in Python one call takes the whole run;
2. **scales** (``scales``): the schedule (``pipeline.schedule``: the ladder of sizes and the
   steps at each) cut to the part's steps ``[start, stop)``; ``Pipeline.run`` takes them in the
   graph (a served request) and eagerly (``tfstyle.transfer``), the same function both ways;
3. **chunks**: ``tfstyle.transfer`` takes a scale's steps in chunks of about a second
   (``Hooks.advance`` in ``tfstyle.api``), so that a progress bar, callbacks and Ctrl-C run
   between them; the graph takes them in one ``tf.while_loop``.
"""

from __future__ import annotations

from typing import NamedTuple


def requests(iterations: int, chunk: int) -> list[tuple[int, int]]:
    """The step ranges ``[start, stop)`` of a served run in parts of at most ``chunk`` steps
    (one empty range for a run of 0 steps, which still returns the starting image)."""
    if iterations <= 0:
        return [(0, 0)]
    return [(start, min(start + chunk, iterations)) for start in range(0, iterations, chunk)]


class Scales(NamedTuple):
    """The scales a part of a run takes (``scales``); int32 tensors (numbers when eager)."""

    sizes: object  # (S,) the run's scales, longer side in px
    begins: object  # (S,) the part's first step at each scale (a global step number)
    counts: object  # (S,) the part's steps at each scale (0 outside the part)
    first: object  # scalar: the first scale the part runs (holds step ``start``)
    last: object  # scalar: the last scale the part runs (holds step ``stop - 1``), >= first


def scales(sizes, steps, start, stop) -> Scales:
    """The scales of the steps ``[start, stop)`` of a run whose schedule is ``sizes``, ``steps``
    (``pipeline.schedule``), as TF ops.

    A part of no steps still has a scale (the one holding ``start``): its image is returned.
    """
    import tensorflow as tf

    start, stop = tf.cast(start, tf.int32), tf.cast(stop, tf.int32)
    ends = tf.cumsum(steps)
    begins = tf.maximum(ends - steps, start)
    counts = tf.maximum(tf.minimum(ends, stop) - begins, 0)
    count = tf.size(sizes)
    first = tf.minimum(tf.reduce_sum(tf.cast(ends <= start, tf.int32)), count - 1)
    last = tf.maximum(tf.minimum(tf.reduce_sum(tf.cast(ends < stop, tf.int32)), count - 1), first)
    return Scales(sizes, begins, counts, first, last)
