"""``/slack/events`` on ``sayso serve``: Slack's Events API and interactivity, through bolt's request handling.

The route refuses a request without a signature or with a timestamp that is not a number, reads the body and
hands it to bolt in the server's thread pool: bolt verifies the signature and acknowledges; the turn itself
runs in the bot's background threads, so the request never waits for it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt import BoltRequest
from starlette.concurrency import run_in_threadpool

from ._bot import SlackBot

__all__ = ["PATH", "mount"]

PATH = "/slack/events"
_REFUSED = JSONResponse({"error": "invalid request"}, status_code=401)  # bolt's own answer to a bad signature


def mount(app: FastAPI, bot: SlackBot) -> None:
    app.state.slack = bot

    @app.post(PATH, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        """Slack's events and interactions: verified, acknowledged at once, handled in the background."""
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not (stamp.isascii() and stamp.isdigit()) or not request.headers.get("X-Slack-Signature"):
            return _REFUSED  # bolt's verifier fails with a 500 on a timestamp that is not a number
        body = (await request.body()).decode("utf-8", errors="replace")
        answer = await run_in_threadpool(bot.app.dispatch, BoltRequest(
            body=body, query=dict(request.query_params), headers=dict(request.headers)))
        return Response(content=answer.body, status_code=answer.status,
                        headers=answer.first_headers_without_set_cookie())
