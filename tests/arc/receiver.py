"""A SIA DC-09 alarm receiving centre for carebridge's tests: pysiaalarm's
receiver on 127.0.0.1:PORT (TCP or UDP), one account (plain or AES), every
accepted event printed as one JSON line on stdout. `ready` is printed once
it listens. Refusals (wrong key, CRC, timestamp) are pysiaalarm's own."""
import argparse
import asyncio
import json
import logging
import sys

from pysiaalarm import SIAAccount
from pysiaalarm.aio import CommunicationsProtocol, SIAClient
from pysiaalarm.aio import server as _server


# pysiaalarm 3.2.2's UDP server asserts its transport is an
# asyncio.DatagramTransport, which fails here (Python 3.11), leaving it
# unable to answer: keep the transport without the assertion.
def _connection_made(self, transport) -> None:
    self.transport = transport


_server.SIAServerUDP.connection_made = _connection_made


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    p.add_argument("--account", required=True)
    p.add_argument("--key", default=None)
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    async def on_event(ev) -> None:
        print(json.dumps({
            "message_type": ev.message_type.value if ev.message_type else None,
            "code": ev.code,
            "ri": ev.ri,
            "account": ev.account,
            "receiver": ev.receiver,
            "line": ev.line,
            "sequence": ev.sequence,
            "encrypted": ev.encrypted,
            "qualifier": ev.event_qualifier,
            "event_type": ev.event_type,
            "partition": ev.partition,
            "timestamp": ev.timestamp.isoformat() if ev.timestamp else None,
        }), flush=True)

    proto = CommunicationsProtocol.TCP if a.proto == "tcp" else CommunicationsProtocol.UDP
    acc = SIAAccount(a.account, a.key, allowed_timeband=(40, 20))
    client = SIAClient("127.0.0.1", a.port, [acc], function=on_event, protocol=proto)
    await client.async_start()
    print(json.dumps({"ready": a.port}), flush=True)
    while True:
        await asyncio.sleep(3600)


asyncio.run(main())
