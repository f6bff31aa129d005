#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that holds every chunk for a fixed delay in each direction, to
play a PostgreSQL on another host: `delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS`.
Order is kept (same delay for every chunk of a direction). Stops by itself after an hour."""
import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            loop.call_later(delay, writer.write, data)
    finally:
        loop.call_later(delay, writer.close)


async def main(listen, target, delay):
    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(
            pipe(client_reader, server_writer, delay),
            pipe(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))
