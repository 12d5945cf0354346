"""Inputs an attacker (or a careless client) sends, shared by the tests that refuse them."""

from __future__ import annotations

# URLs the HTTP client refuses to send: each must be a 400 or a typed error, never a 500.
UNSENDABLE_URLS = [
    "http://1.2.3.04/v.mp4",
    "http://0177.0.0.1/v.mp4",
    "http://999.999.999.999/v.mp4",
    "http://videos.example.com/v\x00.mp4",
    "http://videos.example.com/v\r\n.mp4",
    "http://videos.example.com/\tv.mp4",
    "http://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/v.mp4",  # full-width letters
    "http://videos.example.com/" + "a" * 65536,
    "http://videos.example.com/\ud800.mp4",  # a lone surrogate
    "http://videos.example.com:99999/v.mp4",
    "http://xn--/v.mp4",
]
