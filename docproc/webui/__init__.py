"""The web page for people: one HTML shell and its script and style, all shipped in the package.

The page talks to the same /v1 API as any client (with the browser session's API key), so this module only
serves files: `/` is the page, `/ui/...` its assets."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under `/ui`; neither is part of the API's OpenAPI document."""
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
