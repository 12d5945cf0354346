"""Task callbacks: signed webhook delivery with the spec's retries."""

from upres.callbacks.webhooks import (
    CallbackDispatcher,
    CallbackSender,
    CallbackStore,
    sign,
    verify_signature,
)

__all__ = ["CallbackDispatcher", "CallbackSender", "CallbackStore", "sign", "verify_signature"]
