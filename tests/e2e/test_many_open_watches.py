"""More than Envoy's default 1024 concurrent upstream requests: 1100 watches
held open at once all get through, because the shipped clusters raise the
circuit-breaker limits (the default would refuse the 1025th with 503).

The watches are opened OPENING at a time and then all held: what is under
test is how many Envoy holds, not how fast a burst of 1100 TLS handshakes
and Checks is answered on a shared machine (a burst can outlast the 1 s
ext_authz timeout there, which fails closed with 503)."""

import asyncio

from stack import https_context

WATCHES = 1100
OPENING = 100


async def _open_watch(
    port: int, ctx, token: str, opened: asyncio.Queue, release: asyncio.Event, opening: asyncio.Semaphore
) -> int:
    writer = None
    try:
        async with opening:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
            writer.write(
                (
                    "GET /api/v1/namespaces/default/pods?watch=true&resourceVersion=1 HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), timeout=60)
        status = int(status_line.split()[1])
        await opened.put(status)
        await release.wait()
        return status
    finally:
        if writer is not None:
            writer.close()


async def _run(stack) -> list[int]:
    ctx = https_context(stack.envoy_ca)
    opened: asyncio.Queue = asyncio.Queue()
    release = asyncio.Event()
    opening = asyncio.Semaphore(OPENING)
    tasks = [
        asyncio.create_task(_open_watch(stack.ports["envoy"], ctx, stack.alice_token, opened, release, opening))
        for _ in range(WATCHES)
    ]
    statuses = []
    try:
        for _ in range(WATCHES):
            statuses.append(await asyncio.wait_for(opened.get(), timeout=90))
    finally:
        # Every watch is open at this point; now let them go.
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return statuses


def test_1100_concurrent_watches_are_all_served(stack):
    statuses = asyncio.run(_run(stack))
    assert len(statuses) == WATCHES
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
