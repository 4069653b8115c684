"""What the HTTP tests share: a small client, and starting the local API as `make dev` does
(both in devtools.localapi, which the soak uses too)."""

from devtools import ROOT
from devtools.localapi import Api, Response, new_name, start_local_api, stop

__all__ = ["ROOT", "Api", "Response", "new_name", "start_local_api", "stop"]
