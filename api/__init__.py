"""The gateway's HTTP API (API.md): an app factory, one router per audience."""
