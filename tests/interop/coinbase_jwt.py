#!/usr/bin/env python3
"""Coinbase JWTs, held against independent implementations:

- **PyJWT** (with `cryptography`) verifies every JWT the brokerguard agent
  signed, for both key kinds: an EC P-256 key in SEC1 PEM (ES256, the
  fixed 64-byte r||s signature PyJWT expects) and an Ed25519 key as the
  CDP portal's base64 seed (EdDSA). WebSocket JWTs (one per subscribe
  message, each with its own nonce) carry no `uri`; the REST JWT of the
  accounts check carries `"GET <host><path>"`. The tokens come from
  `brokerguard sim coinbase --record-jwts FILE` (signed by keys this suite
  made a moment ago), so the shipped CLI never prints one.
- **coinbase-advanced-py**'s own JWT builder (`coinbase.jwt_generator`)
  makes tokens `brokerguard sim coinbase` accepts on the WebSocket and on
  REST, for both key kinds, and one signed by a key the simulator does not
  know is refused: the simulator and the agent cannot agree on one mistake.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import jwt as pyjwt
import requests
from coinbase import jwt_generator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from websockets.sync.client import connect as ws_connect

from harness import Checks, SimProcess, agent_section, expect, main_guard, start_agent, wait_until, workdir

TIMEOUT = 20.0
EC_NAME = "organizations/interop-org/apiKeys/ec-key"
ED_NAME = "organizations/interop-org/apiKeys/ed-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Keys:
    """An EC and an Ed25519 key made now, in the forms an operator stores."""

    def __init__(self) -> None:
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.ec_pem = self.ec.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self.ed_seed = base64.b64encode(
            self.ed.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        ).decode()

    def sim_keys(self) -> list[str]:
        ec_pub = self.ec.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        ed_pub = self.ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return [
            "--key", f"{EC_NAME}={base64.b64encode(ec_pub).decode()}",
            "--key", f"{ED_NAME}={base64.b64encode(ed_pub).decode()}",
        ]


def recorded(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if " " in line]  # type: ignore[misc]


def run() -> int:
    checks = Checks("coinbase_jwt")
    keys = Keys()
    with workdir("bg-coinbase-") as work:
        record = work / "jwts.txt"
        ws_port, rest_port = free_port(), free_port()
        sim = SimProcess(
            ["coinbase", "--port", str(ws_port), "--rest-port", str(rest_port), "--data-every", "100ms",
             "--record-jwts", str(record), *keys.sim_keys()],
            work / "sim.stderr",
            "coinbase simulator listening: ",
        )
        agent = None
        try:
            creds = work / "credentials.env"
            # A PEM on one double-quoted line, its newlines written as \n.
            pem_line = keys.ec_pem.strip().replace("\n", "\\n")
            creds.write_text(
                f"COINBASE_EC_API_KEY_NAME={EC_NAME}\n"
                f"COINBASE_EC_API_SECRET=\"{pem_line}\"\n"
                f"COINBASE_ED_API_KEY_NAME={ED_NAME}\n"
                f"COINBASE_ED_API_SECRET={keys.ed_seed}\n"
            )
            creds.chmod(0o600)
            rest = f"http://127.0.0.1:{rest_port}"
            config = work / "brokerguard.toml"
            config.write_text(
                agent_section(work, creds)
                + f"""
[[feed]]
name = "cbbook"
broker = "coinbase"
account = "ec"
url = "ws://127.0.0.1:{ws_port}"
rest_url = "{rest}"
channels = ["level2", "ticker"]
symbols = ["BTC-USD", "ETH-USD"]

[[feed]]
name = "cbuser"
broker = "coinbase"
account = "ed"
url = "ws://127.0.0.1:{ws_port}/user"
rest_url = "{rest}"
channels = ["user"]
"""
            )
            agent = start_agent(config, work / "agent.stderr")
            # 2 feeds x (heartbeats + their channels), and the accounts check of each.
            wanted = lambda: (  # noqa: E731
                sum(1 for w, _ in recorded(record) if w == "ws") >= 5
                and sum(1 for w, _ in recorded(record) if w == "rest") >= 2
            )
            got = wait_until(TIMEOUT, wanted)
            tokens = recorded(record)

            def pyjwt_verifies_the_agent_s_websocket_jwts() -> None:
                expect(got, f"the agent's JWTs never all arrived: {tokens}\n{agent.stderr_text()[-3000:]}")
                seen = {EC_NAME: 0, ED_NAME: 0}
                nonces = set()
                for what, token in tokens:
                    if what != "ws":
                        continue
                    header = pyjwt.get_unverified_header(token)
                    kid = header["kid"]
                    key, alg = (
                        (keys.ec.public_key(), "ES256") if kid == EC_NAME else (keys.ed.public_key(), "EdDSA")
                    )
                    expect(header["alg"] == alg and header["typ"] == "JWT", f"header {header}")
                    claims = pyjwt.decode(
                        token, key, algorithms=[alg], options={"require": ["exp", "nbf", "sub", "iss"]}
                    )
                    expect(claims["sub"] == kid and claims["iss"] == "cdp", f"claims {claims}")
                    expect(claims["exp"] - claims["nbf"] == 120, f"lifetime {claims}")
                    expect("uri" not in claims, f"a WebSocket JWT with uri: {claims}")
                    expect(header["nonce"] not in nonces, "a nonce used twice")
                    nonces.add(header["nonce"])
                    seen[kid] += 1
                expect(seen[EC_NAME] >= 3 and seen[ED_NAME] >= 2, f"JWTs per key {seen}")

            def pyjwt_verifies_the_agent_s_rest_jwts_with_their_uri() -> None:
                rest_tokens = [t for w, t in tokens if w == "rest"]
                expect(len(rest_tokens) >= 2, f"REST JWTs {len(rest_tokens)}")
                kids = set()
                for token in rest_tokens:
                    kid = pyjwt.get_unverified_header(token)["kid"]
                    key, alg = (
                        (keys.ec.public_key(), "ES256") if kid == EC_NAME else (keys.ed.public_key(), "EdDSA")
                    )
                    claims = pyjwt.decode(token, key, algorithms=[alg])
                    want = f"GET 127.0.0.1:{rest_port}/api/v3/brokerage/accounts"
                    expect(claims.get("uri") == want, f"uri {claims.get('uri')!r}, want {want!r}")
                    kids.add(kid)
                expect(kids == {EC_NAME, ED_NAME}, f"REST JWTs from {kids}")

            checks.run("PyJWT verifies the agent's WebSocket JWTs (ES256 and EdDSA, no uri)",
                       pyjwt_verifies_the_agent_s_websocket_jwts)
            checks.run("PyJWT verifies the agent's REST JWTs with their uri",
                       pyjwt_verifies_the_agent_s_rest_jwts_with_their_uri)

            def sdk_ws(name: str, secret: str) -> dict:
                token = jwt_generator.build_ws_jwt(name, secret)
                path = "/user" if name == ED_NAME else ""
                with ws_connect(f"ws://127.0.0.1:{ws_port}{path}", open_timeout=10) as ws:
                    channel = "user" if name == ED_NAME else "ticker"
                    msg = {"type": "subscribe", "channel": channel, "jwt": token}
                    if channel == "ticker":
                        msg["product_ids"] = ["BTC-USD"]
                    ws.send(json.dumps(msg))
                    while True:
                        answer = json.loads(ws.recv(timeout=10))
                        if answer.get("channel") == "subscriptions" or answer.get("type") == "error":
                            return answer

            def sdk_tokens_are_accepted_by_the_simulator() -> None:
                for name, secret in ((EC_NAME, keys.ec_pem), (ED_NAME, keys.ed_seed)):
                    answer = sdk_ws(name, secret)
                    expect(answer.get("channel") == "subscriptions", f"{name}: {answer}")
                    uri = jwt_generator.format_jwt_uri("GET", "/api/v3/brokerage/accounts").replace(
                        "api.coinbase.com", f"127.0.0.1:{rest_port}"
                    )
                    token = jwt_generator.build_rest_jwt(uri, name, secret)
                    r = requests.get(f"{rest}/api/v3/brokerage/accounts",
                                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
                    expect(r.status_code == 200 and r.json()["accounts"], f"{name}: {r.status_code} {r.text}")

            def a_token_of_an_unknown_key_is_refused() -> None:
                stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                ).decode()
                answer = sdk_ws(EC_NAME, stranger)
                expect(answer.get("type") == "error", f"accepted a stranger's token: {answer}")
                token = jwt_generator.build_rest_jwt(
                    "GET api.coinbase.com/api/v3/brokerage/accounts", EC_NAME, keys.ec_pem
                )
                r = requests.get(f"{rest}/api/v3/brokerage/accounts",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
                expect(r.status_code == 401, f"a token for another host's uri: {r.status_code}")

            checks.run("coinbase-advanced-py's JWTs (ES256 and EdDSA) are accepted by the simulator",
                       sdk_tokens_are_accepted_by_the_simulator)
            checks.run("a JWT of a key the simulator does not know, or for another uri, is refused",
                       a_token_of_an_unknown_key_is_refused)

            def no_secret_in_the_agent_s_journal() -> None:
                log = agent.stderr_text()
                for _, token in tokens:
                    expect(token not in log and token.rsplit(".", 1)[1] not in log, "a JWT in the journal")
                for line in keys.ec_pem.splitlines()[1:-1]:
                    expect(line not in log, "the EC key in the journal")
                expect(keys.ed_seed not in log, "the Ed25519 seed in the journal")

            checks.run("no key and no JWT in the agent's journal", no_secret_in_the_agent_s_journal)
        finally:
            if agent is not None:
                agent.stop()
            sim.stop()
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
