#!/usr/bin/python3
"""A SIP-over-WebSocket client (RFC 7118) for sipedge's end-to-end tests,
on Debian's python3-websockets: the framing, masking and ping/pong are
that library's, the SIP is written here.

    sip_ws_client.py URL MODE

MODE:
  call        INVITE, ACK, then BYE (this side hangs up)
  hung-up     INVITE, ACK, then wait for the far end's BYE and answer it
  ping        a WebSocket ping, and an OPTIONS the edge answers itself
  no-sip      the upgrade without the sip subprotocol
  too-large   one message longer than the edge's max_message

Prints one JSON object per line: what happened, for the test to assert on.
"""
import asyncio
import json
import sys
import uuid

import websockets

SDP = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
HOST = "df7jal23ls0d.invalid"


def say(**event):
    print(json.dumps(event), flush=True)


def request(method, uri, call_id, cseq, tag, to, routes=(), body="", content_type=None):
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/WS {HOST};branch=z9hG4bK{uuid.uuid4().hex[:12]}",
        "Max-Forwards: 70",
    ]
    lines += [f"Route: {r}" for r in routes]
    lines += [
        f"From: <sip:alice@example.com>;tag={tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:alice@{HOST};transport=ws>",
    ]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def headers(message, name):
    """Every value of header `name` (full name only), in order."""
    out = []
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            out += [v.strip() for v in split_commas(value)]
    return out


def split_commas(value):
    parts, depth, cur = [], 0, ""
    for ch in value:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def answer(req, code, reason):
    keep = [
        line
        for line in req.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        if line.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")
    ]
    return f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"


async def final(ws, method):
    """Reads until the final response to `method`, reporting each."""
    while True:
        m = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(m, bytes):
            m = m.decode()
        first = m.split("\r\n", 1)[0]
        say(got=first, frame="text")
        if first.startswith("SIP/2.0 ") and f" {method}" in headers(m, "CSeq")[0] and int(first.split()[1]) >= 200:
            return m


async def call(url, hang_up_here):
    async with websockets.connect(url, subprotocols=["sip"]) as ws:
        say(subprotocol=ws.subprotocol)
        call_id = f"{uuid.uuid4().hex}@{HOST}"
        tag = uuid.uuid4().hex[:8]
        to = "<sip:service@example.com>"
        await ws.send(request("INVITE", "sip:service@example.com", call_id, 1, tag, to,
                              body=SDP, content_type="application/sdp"))
        ok = await final(ws, "INVITE")
        if not ok.startswith("SIP/2.0 200"):
            say(failed=ok.split("\r\n", 1)[0])
            return
        rr = headers(ok, "Record-Route")
        say(record_route=rr)
        contact = headers(ok, "Contact")[0].strip("<>").split(">")[0]
        to = headers(ok, "To")[0]
        routes = list(reversed(rr))
        await ws.send(request("ACK", contact, call_id, 1, tag, to, routes))
        if hang_up_here:
            await ws.send(request("BYE", contact, call_id, 2, tag, to, routes))
            bye_ok = await final(ws, "BYE")
            say(bye=bye_ok.split("\r\n", 1)[0])
        else:
            m = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(m, bytes):
                m = m.decode()
            say(got=m.split("\r\n", 1)[0], request_uri_host=m.split(" ")[1])
            await ws.send(answer(m, 200, "OK"))
            say(bye="answered")
        await ws.close()
        say(closed=ws.close_code)


async def ping(url):
    async with websockets.connect(url, subprotocols=["sip"]) as ws:
        pong = await ws.ping(b"sipedge")
        await asyncio.wait_for(pong, 5)
        say(pong=True)
        await ws.send(request("OPTIONS", url.replace("ws://", "sip:").replace("wss://", "sip:"),
                              f"{uuid.uuid4().hex}@{HOST}", 1, "p1", "<sip:edge>")
                      .replace("Max-Forwards: 70", "Max-Forwards: 0"))
        m = await asyncio.wait_for(ws.recv(), 5)
        say(got=m.split("\r\n", 1)[0])


async def no_sip(url):
    try:
        async with websockets.connect(url) as ws:
            say(subprotocol=ws.subprotocol, refused=False)
    except websockets.exceptions.InvalidStatusCode as e:
        say(refused=True, status=e.status_code)


async def too_large(url):
    async with websockets.connect(url, subprotocols=["sip"], max_size=None) as ws:
        body = "x" * 4000
        await ws.send(request("MESSAGE", "sip:service@example.com", f"{uuid.uuid4().hex}@{HOST}",
                              1, "t1", "<sip:service@example.com>", body=body,
                              content_type="text/plain"))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            say(closed=None)
        except websockets.exceptions.ConnectionClosed as e:
            say(closed=e.code)


def main():
    url, mode = sys.argv[1], sys.argv[2]
    runs = {
        "call": lambda: call(url, True),
        "hung-up": lambda: call(url, False),
        "ping": lambda: ping(url),
        "no-sip": lambda: no_sip(url),
        "too-large": lambda: too_large(url),
    }
    try:
        asyncio.run(runs[mode]())
    except Exception as e:  # reported, for the test's failure message
        say(error=f"{type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
