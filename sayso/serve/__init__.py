"""The HTTP channel: ``sayso serve``, an authenticated API under ``/v1`` and a web page at ``/``.

Everything a request does goes through the same conversation and pipeline as
``sayso chat`` and ``sayso do``; the caller is always the person the access
token names, never a user id in a body. See docs/serve.md.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
