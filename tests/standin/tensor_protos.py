"""Request TensorProtos checked against a signature input before any value is materialised
(``_check_tensor``), and outputs encoded as TF Serving answers them (``as_proto_field``)."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from .calls import INVALID, ServingError
else:  # run as a script: its directory, tests/standin, is on sys.path
    from calls import INVALID, ServingError

# The TensorProto field that holds the values of each dtype (the others must stay empty).
_VALUE_FIELDS = [
    f.name for f in tensor_pb2.TensorProto.DESCRIPTOR.fields if f.name.endswith("_val")
]
_FIELD_OF = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"DataType({enum})"


#: The repeated field ``Tensor::AsProtoField`` fills, by dtype (tensor.cc).
_PROTO_FIELDS = {
    tf.float32: "float_val", tf.float64: "double_val", tf.int32: "int_val", tf.int16: "int_val",
    tf.int8: "int_val", tf.uint8: "int_val", tf.uint16: "int_val", tf.int64: "int64_val",
    tf.uint32: "uint32_val", tf.uint64: "uint64_val", tf.bool: "bool_val",
    tf.string: "string_val",
}  # fmt: skip


def as_proto_field(value) -> tensor_pb2.TensorProto:
    """``value`` as TF Serving answers it by default: ``Tensor::AsProtoField``, one typed value
    a time (a uint8 image costs 1-2 bytes a pixel channel in ``int_val``, not 1 as raw bytes)."""
    value = np.asarray(value)
    dtype = tf.as_dtype(value.dtype)
    if dtype not in _PROTO_FIELDS:
        return tf.make_tensor_proto(value)
    proto = tensor_pb2.TensorProto(
        dtype=dtype.as_datatype_enum, tensor_shape=tf.TensorShape(value.shape).as_proto()
    )
    getattr(proto, _PROTO_FIELDS[dtype]).extend(value.ravel().tolist())
    return proto


def _check_tensor(alias: str, index: int, info, proto) -> None:
    """Refuse a TensorProto whose dtype, declared shape, value count or integer values do not
    fit the signature input, reading only its header and value counts: ``tf.make_ndarray``
    would first expand a short value list to the declared shape (a shape of [500000000] with
    one value is 2 GB)."""
    if proto.dtype != info.dtype:
        raise ServingError(
            INVALID,
            f"Expects arg[{index}] to be {_dtype_name(info.dtype)} but "
            f"{_dtype_name(proto.dtype)} is provided (input '{alias}')",
        )
    dtype = tf.dtypes.as_dtype(info.dtype)
    expected = tf.TensorShape(info.tensor_shape)
    if proto.tensor_shape.unknown_rank:
        raise ServingError(INVALID, f"input '{alias}': a tensor needs a known shape")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise ServingError(INVALID, f"input '{alias}': negative dimension in shape {dims}")
    if not expected.is_compatible_with(tf.TensorShape(dims)):
        raise ServingError(INVALID, f"input '{alias}' must have shape {expected}; got {dims}")
    count = math.prod(dims)
    field = _FIELD_OF.get(proto.dtype)
    stray = [f for f in _VALUE_FIELDS if f != field and len(getattr(proto, f))]
    if field is None or stray or (proto.tensor_content and dtype == tf.string):
        where = ", ".join(stray) or "tensor_content"
        raise ServingError(
            INVALID, f"input '{alias}' is {dtype.name} but carries values in {where}"
        )
    if proto.tensor_content:
        itemsize = np.dtype(dtype.as_numpy_dtype).itemsize
        if len(getattr(proto, field)) or len(proto.tensor_content) != count * itemsize:
            raise ServingError(
                INVALID,
                f"input '{alias}' declares shape {dims} ({count} {dtype.name} values, "
                f"{count * itemsize} bytes) but tensor_content has {len(proto.tensor_content)} "
                "bytes",
            )
        return
    values = getattr(proto, field)
    present = len(values) // (2 if dtype.is_complex else 1)
    # Fewer values than declared: TF fills with the last one (zeros if none); allowed only
    # where the signature bounds the shape, so that the filling stays small.
    if present > count or (present < count and not expected.is_fully_defined()):
        raise ServingError(
            INVALID,
            f"input '{alias}' declares shape {dims} ({count} values) but carries {present}",
        )
    if field == "int_val" and dtype != tf.int32 and values:
        low, high = dtype.min, dtype.max
        if min(values) < low or max(values) > high:
            raise ServingError(
                INVALID,
                f"input '{alias}' is {dtype.name}: values must be in [{low}, {high}]",
            )
