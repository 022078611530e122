"""Decoding of `application/vnd.kubernetes.protobuf` request bodies for the objects that
kubectl 1.32+ generators send that way (`kubectl create deployment|configmap|secret|
namespace|serviceaccount|service`; observed, they do not fall back to JSON on 415).

The body is the 4-byte magic `k8s\\0` and a runtime.Unknown {typeMeta, raw}; raw is the
object in the gogo-protobuf encoding of the Kubernetes API types. Only the fields those
generators can set are described below (field numbers from the API's generated.proto);
unknown fields are skipped. gogo writes zero values of non-pointer fields, so zero values
are dropped to match JSON's omitempty, except for pointer fields marked "p".

Owns no state. Responses are always JSON; clients send Accept with a JSON fallback.
"""

import base64
import datetime

from apierrors import bad_request, unsupported_media

MEDIA = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


class _Bad(Exception):
    pass


def _varint(buf, i):
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Bad("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf):
    """Yield (field number, wire type, value) for one message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise _Bad("truncated field %d" % num)
            value, i = buf[i:i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = buf[i:i + n], i + n
        else:
            raise _Bad("unsupported wire type %d" % wire)
        yield num, wire, value


# Schemas: {field number: (json name, type[, "p"])}. Types: "s" string, "i" integer,
# "b" bool, "y" bytes (base64 in JSON), "q" Quantity, "t" Time, "ios" IntOrString,
# dict = nested message, ("r", t) repeated, ("map", t) map<string, t>.
_TIME = "t"
OWNER_REF = {1: ("kind", "s"), 3: ("name", "s"), 4: ("uid", "s"), 5: ("apiVersion", "s"),
             6: ("controller", "b", "p"), 7: ("blockOwnerDeletion", "b", "p")}
OBJECT_META = {1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"),
               5: ("uid", "s"), 6: ("resourceVersion", "s"), 7: ("generation", "i"),
               8: ("creationTimestamp", _TIME), 11: ("labels", ("map", "s")),
               12: ("annotations", ("map", "s")), 13: ("ownerReferences", ("r", OWNER_REF)),
               14: ("finalizers", ("r", "s"))}
LABEL_SELECTOR = {1: ("matchLabels", ("map", "s")), 2: ("matchExpressions", ("r", {
    1: ("key", "s"), 2: ("operator", "s"), 3: ("values", ("r", "s"))}))}
CONTAINER_PORT = {1: ("name", "s"), 2: ("hostPort", "i"), 3: ("containerPort", "i"),
                  4: ("protocol", "s"), 5: ("hostIP", "s")}
ENV_VAR = {1: ("name", "s"), 2: ("value", "s")}
RESOURCES = {1: ("limits", ("map", "q")), 2: ("requests", ("map", "q"))}
CONTAINER = {1: ("name", "s"), 2: ("image", "s"), 3: ("command", ("r", "s")),
             4: ("args", ("r", "s")), 5: ("workingDir", "s"),
             6: ("ports", ("r", CONTAINER_PORT)), 7: ("env", ("r", ENV_VAR)),
             8: ("resources", RESOURCES), 13: ("terminationMessagePath", "s"),
             14: ("imagePullPolicy", "s"), 16: ("stdin", "b"), 17: ("stdinOnce", "b"),
             18: ("tty", "b"), 20: ("terminationMessagePolicy", "s")}
POD_SPEC = {2: ("containers", ("r", CONTAINER)), 3: ("restartPolicy", "s"),
            4: ("terminationGracePeriodSeconds", "i", "p"),
            5: ("activeDeadlineSeconds", "i", "p"), 6: ("dnsPolicy", "s"),
            7: ("nodeSelector", ("map", "s")), 8: ("serviceAccountName", "s"),
            9: ("serviceAccount", "s"), 10: ("nodeName", "s"), 11: ("hostNetwork", "b"),
            16: ("hostname", "s"), 17: ("subdomain", "s"), 19: ("schedulerName", "s"),
            20: ("initContainers", ("r", CONTAINER)),
            21: ("automountServiceAccountToken", "b", "p"), 24: ("priorityClassName", "s"),
            30: ("enableServiceLinks", "b", "p")}
POD_TEMPLATE = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}
DEPLOYMENT = {1: ("metadata", OBJECT_META), 2: ("spec", {
    1: ("replicas", "i", "p"), 2: ("selector", LABEL_SELECTOR), 3: ("template", POD_TEMPLATE),
    4: ("strategy", {1: ("type", "s")}), 5: ("minReadySeconds", "i"),
    6: ("revisionHistoryLimit", "i", "p"), 7: ("paused", "b"),
    9: ("progressDeadlineSeconds", "i", "p")})}
CONFIGMAP = {1: ("metadata", OBJECT_META), 2: ("data", ("map", "s")),
             3: ("binaryData", ("map", "y")), 4: ("immutable", "b", "p")}
SECRET = {1: ("metadata", OBJECT_META), 2: ("data", ("map", "y")), 3: ("type", "s"),
          4: ("stringData", ("map", "s")), 5: ("immutable", "b", "p")}
NAMESPACE = {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", ("r", "s"))})}
SERVICE_ACCOUNT = {1: ("metadata", OBJECT_META),
                   2: ("secrets", ("r", {1: ("kind", "s"), 2: ("namespace", "s"),
                                         3: ("name", "s")})),
                   3: ("imagePullSecrets", ("r", {1: ("name", "s")})),
                   4: ("automountServiceAccountToken", "b", "p")}
SERVICE_PORT = {1: ("name", "s"), 2: ("protocol", "s"), 3: ("port", "i"),
                4: ("targetPort", "ios"), 5: ("nodePort", "i"), 6: ("appProtocol", "s", "p")}
SERVICE = {1: ("metadata", OBJECT_META), 2: ("spec", {
    1: ("ports", ("r", SERVICE_PORT)), 2: ("selector", ("map", "s")), 3: ("clusterIP", "s"),
    4: ("type", "s"), 5: ("externalIPs", ("r", "s")), 7: ("sessionAffinity", "s"),
    10: ("externalName", "s")})}
KINDS = {("apps/v1", "Deployment"): DEPLOYMENT, ("v1", "ConfigMap"): CONFIGMAP,
         ("v1", "Secret"): SECRET, ("v1", "Namespace"): NAMESPACE,
         ("v1", "ServiceAccount"): SERVICE_ACCOUNT, ("v1", "Service"): SERVICE}


def _scalar(kind, wire, raw):
    if kind in ("i", "b"):
        if wire != 0:
            raise _Bad("expected a varint")
        if kind == "b":
            return bool(raw)
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if wire != 2:
        raise _Bad("expected a length-delimited field")
    if kind == "s":
        return raw.decode("utf-8")
    if kind == "y":
        return base64.b64encode(raw).decode()
    if kind == "q":
        return next((v.decode() for n, _, v in _fields(raw) if n == 1), "0")
    if kind == "t":
        secs = next((v for n, _, v in _fields(raw) if n == 1), None)
        if secs is None:
            return None
        t = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "ios":
        vals = {n: v for n, _, v in _fields(raw)}
        return vals.get(3, b"").decode() if vals.get(1) == 1 else vals.get(2, 0)
    return _message(kind, raw)


def _zero(value):
    return value in ("", 0, False, None) or value == {} or value == []


def _message(schema, buf):
    out = {}
    for num, wire, raw in _fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue
        name, kind = spec[0], spec[1]
        if isinstance(kind, tuple) and kind[0] == "r":
            out.setdefault(name, []).append(_scalar(kind[1], wire, raw))
        elif isinstance(kind, tuple) and kind[0] == "map":
            entry = {n: (w, v) for n, w, v in _fields(raw)}
            key = entry.get(1, (2, b""))[1].decode()
            w, v = entry.get(2, (2, b""))
            out.setdefault(name, {})[key] = _scalar(kind[1], w, v)
        else:
            value = _scalar(kind, wire, raw)
            if _zero(value) and len(spec) < 3:
                out.pop(name, None)
            else:
                out[name] = value
    return out


def decode(raw):
    """The JSON-shaped dict for a protobuf body, or an ApiError (400 / 415)."""
    if not raw.startswith(MAGIC):
        raise bad_request("protobuf body does not start with the k8s magic prefix")
    try:
        envelope = {n: v for n, _, v in _fields(raw[len(MAGIC):])}
        type_meta = {n: v.decode() for n, _, v in _fields(envelope.get(1, b""))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        schema = KINDS.get((api_version, kind))
        if schema is None:
            raise unsupported_media(MEDIA + " for %s %s" % (api_version, kind),
                                    ["application/json"])
        obj = _message(schema, envelope.get(2, b""))
    except (_Bad, UnicodeDecodeError, StopIteration) as e:
        raise bad_request("failed to decode the protobuf body: %s" % e) from None
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
