"""Wire-level types shared by the handlers: the parsed request, the answer (complete or
streamed), and Accept negotiation between JSON, Table and PartialObjectMetadata.

Owns no state.
"""

import apierrors as E

JSON = "application/json"
TABLE_MEDIA = "application/json;as=Table;v=v1;g=meta.k8s.io"


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def q(self, name, default=""):
        vals = self.query.get(name)
        return vals[0] if vals else default

    def flag(self, name):
        return self.q(name).lower() in ("true", "1")


class Response:
    """A complete answer, or a stream: stream(handler) writes everything itself."""

    def __init__(self, code=200, body=None, ctype=JSON, headers=None, stream=None):
        self.code = code
        self.body = body
        self.ctype = ctype
        self.headers = headers or []
        self.stream = stream


def negotiate(accept, listing):
    """'json', 'table' or 'meta' for the first acceptable Accept entry; 406 otherwise."""
    if not accept:
        return "json"
    for part in accept.split(","):
        fields = [p.strip() for p in part.split(";")]
        media = fields[0].lower()
        params = dict(p.split("=", 1) for p in fields[1:] if "=" in p)
        if media not in ("application/json", "*/*", "application/*"):
            continue
        as_ = params.get("as")
        if as_ is None:
            return "json"
        if as_ == "Table" and params.get("g") == "meta.k8s.io" and \
                params.get("v") in ("v1", "v1beta1"):
            return "table"
        if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1") and \
                as_ == ("PartialObjectMetadataList" if listing else "PartialObjectMetadata"):
            return "meta"
    raise E.ApiError(406, "NotAcceptable", "only the following media types are accepted: "
                     "application/json, application/yaml, application/vnd.kubernetes.protobuf")


def meta_media(listing):
    return "application/json;as=%s;g=meta.k8s.io;v=v1" % (
        "PartialObjectMetadataList" if listing else "PartialObjectMetadata")
