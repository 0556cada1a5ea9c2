"""tfstyle: neural style transfer (Gatys et al.) on TensorFlow 2 / Keras 3.

>>> import tfstyle
>>> tfstyle.transfer("examples/content.jpg", "examples/style.png", size=256).save("out.png")
"""

__all__ = ["transfer", "Stylizer", "video", "export_saved_model", "Options", "Interrupted"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use, so that the CLI can quieten TensorFlow before it loads.
    if name == "transfer":
        from tfstyle.api import transfer

        return transfer
    if name in ("Interrupted", "Stylizer"):
        from tfstyle import api

        return getattr(api, name)
    if name in ("video", "VideoInterrupted", "ShortClipWarning"):
        from tfstyle import clip

        return getattr(clip, name)
    if name == "export_saved_model":
        from tfstyle.export import export_saved_model

        return export_saved_model
    if name == "Options":
        from tfstyle.options import Options

        return Options
    raise AttributeError(f"module 'tfstyle' has no attribute {name!r}")
