"""The floor of the API load bench: a bare Starlette route doing what
``GET /v1/tasks/{id}`` must do at least (hash the bearer key, look the key up
with its account, look the task up by id and account: two indexed lookups) on
the same SQLite database, and answering the row as JSON.

Run by ``bench/api_load.py`` as ``uvicorn bench._bare_api:app`` with
``BARE_API_DB`` naming the database file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_KEY = (
    "SELECT k.id, k.account_id, a.user_group FROM api_keys k"
    " JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = ? AND k.revoked_at IS NULL"
)
_TASK = "SELECT * FROM tasks WHERE id = ? AND account_id = ?"

_db = sqlite3.connect(os.environ.get("BARE_API_DB", ":memory:"), check_same_thread=False)
_db.row_factory = sqlite3.Row


async def get_task(request: Request) -> JSONResponse:
    secret = request.headers.get("authorization", "").removeprefix("Bearer ")
    key = _db.execute(_KEY, (hashlib.sha256(secret.encode()).hexdigest(),)).fetchone()
    if key is None:
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    task = _db.execute(_TASK, (request.path_params["task_id"], key["account_id"])).fetchone()
    if task is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse(dict(zip(task.keys(), map(str, task), strict=True)))


app = Starlette(routes=[Route("/v1/tasks/{task_id}", get_task)])
