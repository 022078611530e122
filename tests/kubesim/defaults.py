"""Server-side defaulting of built-in objects (kube-api.md §1.9): what a real apiserver
adds to pods, workloads and their pod templates, and resource-quantity canonicalisation.

Owns no state; functions modify the object they are given (the handler's private copy).
"""

import random
import re
from fractions import Fraction

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"

# ---------------------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------------------

_BIN = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_SUFFIX = {v: k for k, v in _DEC.items()}
_QTY_RE = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def parse_quantity(text):
    """(value as Fraction, format) or None; format is 'bin', 'dec' or 'exp'."""
    m = _QTY_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return None
    sign, num, suffix = m.group(1), m.group(2), m.group(3) or ""
    value = Fraction(num)
    if suffix in _BIN:
        value *= 1024 ** _BIN[suffix]
        fmt = "bin"
    elif suffix in _DEC:
        value *= Fraction(10) ** _DEC[suffix]
        fmt = "dec"
    else:
        value *= Fraction(10) ** int(suffix[1:])
        fmt = "exp"
    if sign == "-":
        value = -value
    return value, fmt


def _ceil_to_nano(value):
    scaled = value * 10 ** 9
    whole = -((-scaled.numerator) // scaled.denominator)
    return Fraction(whole, 10 ** 9)


def canonical_quantity(text):
    """The canonical string form ("1000m" -> "1", "1024Mi" -> "1Gi"), keeping the
    input's format family; unparsable text is returned unchanged (validation rejects it)."""
    parsed = parse_quantity(text)
    if parsed is None:
        return text
    value, fmt = parsed
    value = _ceil_to_nano(value)
    sign = "-" if value < 0 else ""
    mag = abs(value)
    if mag == 0:
        return "0"
    if fmt == "bin" and mag.denominator == 1:
        exp = 0
        while exp < 6 and mag % (1024 ** (exp + 1)) == 0:
            exp += 1
        suffix = {v: k for k, v in _BIN.items()}.get(exp, "")
        return "%s%d%s" % (sign, mag // (1024 ** exp), suffix)
    exp = -9
    while exp < 18 and (mag / Fraction(10) ** (exp + 3)).denominator == 1:
        exp += 3
    digits = int(mag / Fraction(10) ** exp)
    if fmt == "exp":
        return "%s%de%d" % (sign, digits, exp) if exp else "%s%d" % (sign, digits)
    return "%s%d%s" % (sign, digits, _DEC_SUFFIX[exp])


def _canonical_resources(res):
    for section in ("requests", "limits"):
        if isinstance(res.get(section), dict):
            res[section] = {k: canonical_quantity(v) for k, v in res[section].items()}


# ---------------------------------------------------------------------------------------
# Pods and pod templates
# ---------------------------------------------------------------------------------------

def _image_pull_policy(image):
    ref = image or ""
    if "@" in ref:
        return "IfNotPresent"
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_probe(probe):
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_container(c):
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("imagePullPolicy", _image_pull_policy(c.get("image")))
    res = c.setdefault("resources", {})
    if isinstance(res, dict):
        if isinstance(res.get("limits"), dict) and res["limits"]:
            req = res.setdefault("requests", {})
            for k, v in res["limits"].items():
                req.setdefault(k, v)
        _canonical_resources(res)
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(probe))


def _default_volume(vol):
    for src in ("configMap", "secret", "projected", "downwardAPI"):
        if isinstance(vol.get(src), dict):
            vol[src].setdefault("defaultMode", 420)
    if isinstance(vol.get("hostPath"), dict):
        vol["hostPath"].setdefault("type", "")


def default_pod_spec(spec):
    """The defaults every PodSpec gets, in pods and in workload templates alike."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict):
            _default_volume(vol)


def random_suffix(n=5):
    return "".join(random.choice(_NAME_CHARS) for _ in range(n))


def _admit_service_account(spec):
    """What the ServiceAccount and DefaultTolerationSeconds admission plugins add on create."""
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(isinstance(t, dict) and t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    if spec.get("automountServiceAccountToken") is False:
        return
    containers = [c for k in ("containers", "initContainers") for c in spec.get(k) or []
                  if isinstance(c, dict)]
    if any(m.get("mountPath") == SA_MOUNT for c in containers for m in c.get("volumeMounts") or []):
        return
    vol_name = "kube-api-access-" + random_suffix()
    spec.setdefault("volumes", []).append({"name": vol_name, "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}})
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": vol_name, "readOnly": True, "mountPath": SA_MOUNT})


def qos_class(spec):
    containers = [c for k in ("containers", "initContainers") for c in spec.get(k) or []
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or canonical_quantity(req.get(r, lim[r])) != canonical_quantity(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod(pod, creating):
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    if creating:
        _admit_service_account(spec)
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def default_workload(obj, kind):
    spec = obj.setdefault("spec", {})
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type") == "RollingUpdate":
            us.setdefault("rollingUpdate", {"partition": 0})
        spec.setdefault("persistentVolumeClaimRetentionPolicy",
                        {"whenDeleted": "Retain", "whenScaled": "Retain"})
    elif kind == "DaemonSet":
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type") == "RollingUpdate":
            us.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
    elif kind == "ReplicaSet":
        spec.pop("revisionHistoryLimit", None)
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(template.setdefault("spec", {}))


def default_service(svc):
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("clusterIP", "10.96.%d.%d" % (random.randint(1, 254),
                                                       random.randint(1, 254)))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
