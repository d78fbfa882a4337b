"""UploadPanel: edit an image of your own (PNG or JPEG, via ``ipywidgets.FileUpload``).

The file is decoded and resized to the model's input by the session
(``EditSession.image_from_bytes``); the controller then selects it like a test image.
A wrong type or an unreadable file gets a plain message beside the button.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as W

from ..common import MessageArea, css
from ..markup import HTML, markup

__all__ = ["UploadPanel"]


class UploadPanel:
    """A FileUpload button and its message line.

    Args:
        on_upload: called with ``(bytes, file name)``; raises ValueError for a bad file.
    """

    def __init__(self, on_upload: Callable[[bytes, str], object]) -> None:
        self.on_upload = on_upload
        self.messages = MessageArea("upload")
        self.button = css(W.FileUpload(accept="image/png,image/jpeg,.png,.jpg,.jpeg", multiple=False,
                                       description="Your own image…", layout=W.Layout(width="auto")), "wb-upload")
        self.button.observe(self._on_value, names="value")
        self.widget = css(W.VBox([W.HBox([self.button, HTML(markup("<small style='color:#555'>PNG or JPEG; it is "
                                                                  "resized to the model's input</small>"))],
                                         layout=W.Layout(align_items="center")), self.messages.widget]),
                          "wb-upload-panel")

    def _on_value(self, change) -> None:
        files = change["new"] or ()
        if files:
            f = files[0]
            self.load(bytes(f["content"]), str(f.get("name", "image")))
            self.button.value = ()  # so that the same file can be uploaded again

    def load(self, data: bytes, name: str) -> bool:
        """Open ``data`` (the file's bytes) as the selection; True when it worked."""
        self.messages.clear()
        with self.messages.guard(f"Opening {name}"):
            self.on_upload(data, name)
            self.messages.show(f"Opened {name}: pick the label it should have, then press Edit.", "success")
            return True
        return False
