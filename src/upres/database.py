"""The database as the composition root sees it: ``TaskStore``, the union of the
roles its callers need, which ``SqlTaskStore`` implements.

Each caller types its dependency as the narrowest role, defined beside it in
the layer that consumes it; this union is for the composition root, which
opens one store per process and hands it to everyone.

One implementation serves SQLite (one machine) and PostgreSQL (many
machines). Every method is one transaction. Every worker write takes a
``Claim`` and is fenced by lease owner and attempt: a worker whose lease was
taken over gets ``LeaseLost`` and changes nothing. A task's final status, its
ledger settlement and its callback outbox row commit together. Any method
raises ServiceUnavailable when the database fails.
"""

from __future__ import annotations

from typing import Protocol

from upres.api.deps import StoreView
from upres.callbacks.webhooks import CallbackStore
from upres.jobs.queue import ChunkQueue, ClaimedChunks, ClaimedTasks, TaskQueue
from upres.jobs.reaper import ExpiredLeases
from upres.services.credits import CreditRecords
from upres.services.keys import KeyRecords
from upres.services.tasks import TaskRecords
from upres.services.uploads import UploadRecords
from upres.storage.janitor import ChunkLeftovers, ExpiringResults, ExpiringUploads


class TaskStore(
    KeyRecords,
    CreditRecords,
    TaskRecords,
    UploadRecords,
    StoreView,
    TaskQueue,
    ClaimedTasks,
    ChunkQueue,
    ClaimedChunks,
    ChunkLeftovers,
    ExpiredLeases,
    CallbackStore,
    ExpiringResults,
    ExpiringUploads,
    Protocol,
):
    """System of record: accounts, keys and ledger; tasks and their queue; the
    chunks of long tasks; the callback outbox; uploads; throughput; result
    expiry; stats and health."""

    def close(self) -> None:
        """Release the database connections."""
        ...
