"""``make run``: start a managed anvil (state persisted under var/), deploy if there is no
live deployment, bootstrap the demo participants on the first run, run the indexer and the
submitter, and serve the API on 127.0.0.1:8000. Ctrl-C stops everything; the next run finds
the same ledger.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import uvicorn

from api.app import create_app
from chain_gateway.access import ParticipantProfile, get_profile, issue_key
from chain_gateway.config import Settings, get_settings
from chain_gateway.errors import GatewayError
from chain_gateway.runtime import Gateway

log = logging.getLogger("gateway.run")
API_ROLES = {1: ["bank"], 3: ["bank", "fx_provider"], 4: ["auditor"]}


def bootstrap(gateway: Gateway, settings: Settings) -> dict[str, object] | None:
    """First run only: demo participants on-chain, their profiles and keys, an operator key.

    Returns the credentials written to var/credentials.json, or None when they exist already.
    """
    path = settings.data_dir / "credentials.json"
    if path.is_file():
        return None
    participants = gateway.bootstrap_demo()
    creds: dict[str, object] = {"operator": None, "auditor": None, "banks": {}, "fx_providers": {}}
    with gateway.require_sessions()() as session:
        for p in participants:
            roles = API_ROLES.get(p.roles, ["bank"])
            if get_profile(session, p.bic) is None:
                session.add(ParticipantProfile(bic=p.bic, address=p.address, name=p.name, country=p.country,
                                               roles=",".join(roles), key_custody="gateway"))
                session.flush()
            key = issue_key(session, owner_bic=p.bic, roles=roles, label="bootstrap").api_key
            if "auditor" in roles:
                creds["auditor"] = key
            elif "fx_provider" in roles:
                creds["fx_providers"][p.bic] = key  # type: ignore[index]
            else:
                creds["banks"][p.bic] = key  # type: ignore[index]
        creds["operator"] = issue_key(session, owner_bic=None, roles=["operator"], label="bootstrap").api_key
        session.commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
    return creds


def main() -> int:
    try:
        settings = get_settings()
    except GatewayError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: the indexer's JSON-RPC polls flooded the log (tens a
    # second), each line carrying the node's URL, which may embed an access token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        gateway = Gateway(settings)
        gateway.start()
    except GatewayError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    try:
        if bootstrap(gateway, settings) is not None:
            print(f"first run: demo participants registered and funded; API keys written to "
                  f"{settings.data_dir / 'credentials.json'}")
        else:
            print(f"API keys are in {settings.data_dir / 'credentials.json'}")
        deployment = gateway.deployment
        if deployment is not None:
            print(f"ledger {deployment.ledger} registry {deployment.registry} on chain {deployment.chain_id} "
                  f"({gateway.chain.rpc_url if gateway.chain else ''})")
        print(f"serving http://{settings.host}:{settings.port}  (Ctrl-C stops)")
        uvicorn.run(create_app(settings, gateway), host=settings.host, port=settings.port, log_level="warning")
    finally:
        gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
