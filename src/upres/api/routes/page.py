"""GET /: the web page (a Jinja2 template), and /static: its script and styles.

The page is a client of the same HTTP API as any other: it keeps the API key
in the browser session and calls /v1/* with it. Everything it loads is served
here; there is no build step and no third-party script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from upres.api.deps import SettingsDep
from upres.domain.tasks import Factor
from upres.models.registry import MODELS, denoise_levels, model_for

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_PATH = "/static"

router = APIRouter(include_in_schema=False)
_templates = Jinja2Templates(directory=WEB_DIR / "templates")
# The page offers the common smooth rates and slow motions; the API takes any in range.
PAGE_FRAME_RATES = (48, 50, 60)
PAGE_SLOWMO = (2, 4)


@router.get("/", response_class=HTMLResponse)
def page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _templates.TemplateResponse(
        request,
        "index.html",
        {
            "factors": [int(factor) for factor in Factor],
            "default_factor": int(Factor.X2),
            "max_input_bytes": settings.max_input_bytes,
            "networks": [
                {"id": spec.id, "description": spec.description, "levels": denoise_levels(spec)}
                for spec in MODELS
            ],
            "default_network": default_network(settings.model),
            "frame_rates": PAGE_FRAME_RATES,
            "slowmo": PAGE_SLOWMO,
            "static": STATIC_PATH,
        },
    )


def default_network(model: str | None) -> str:
    """The network a task that names none gets, in words: one for every factor, or per factor."""
    chosen = {factor: model_for(factor, model).id for factor in Factor}
    if len(set(chosen.values())) == 1:
        return f"{chosen[Factor.X2]} at every factor"
    return ", ".join(f"{network} at {int(factor)}x" for factor, network in chosen.items())


def mount_static(app: FastAPI) -> None:
    """Serves the page's script and styles under /static."""
    app.mount(STATIC_PATH, StaticFiles(directory=WEB_DIR / "static"), name="static")
