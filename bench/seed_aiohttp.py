"""Benchmark reference, not part of hello-edge: the seed's aiohttp server, reproduced.

Two routes, each answering after `await asyncio.sleep(delay)`, with aiohttp's defaults, as the
seed ran it. Usage: python seed_aiohttp.py HOST PORT DELAY_MS
"""

import asyncio
import sys

from aiohttp import web


def main() -> None:
    host, port, delay_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    delay = delay_ms / 1000

    async def index(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(body=b"<h1>Index</h1>", content_type="text/html")

    async def hello(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        text = "<h1>hello, %s!</h1>" % request.match_info["name"]
        return web.Response(body=text.encode("utf-8"), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/hello/{name}", hello)
    web.run_app(app, host=host, port=port, print=lambda *_: print(f"Serving http://{host}:{port}", flush=True))


if __name__ == "__main__":
    main()
