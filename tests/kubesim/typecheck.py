"""JSON type checks standing in for the real server's typed decoding: a built-in object
(and every object's metadata) whose fields have the wrong JSON type is a 400 BadRequest
naming the field (`json: cannot unmarshal string into Go struct field ... of type int32`),
never a crash further down. Only the fields kubesim itself reads are described; others
pass through untouched. Nulls in built-ins are dropped, as Go decodes them to zero values.

Owns no state.
"""

from apierrors import bad_request

S, I, B = "string", "int32", "bool"
MAP_S = {"*": S}
LIST_S = [S]
LABEL_SELECTOR = {"matchLabels": MAP_S,
                  "matchExpressions": [{"key": S, "operator": S, "values": LIST_S}]}
META = {"name": S, "generateName": S, "namespace": S, "uid": S, "resourceVersion": S,
        "generation": I, "creationTimestamp": S, "deletionTimestamp": S,
        "deletionGracePeriodSeconds": I, "labels": MAP_S, "annotations": MAP_S,
        "finalizers": LIST_S, "ownerReferences": [{"apiVersion": S, "kind": S, "name": S,
                                                   "uid": S, "controller": B,
                                                   "blockOwnerDeletion": B}]}
PROBE = {"httpGet": {"path": S, "scheme": S}, "timeoutSeconds": I, "periodSeconds": I,
         "successThreshold": I, "failureThreshold": I}
CONTAINER = {"name": S, "image": S, "imagePullPolicy": S, "command": LIST_S, "args": LIST_S,
             "resources": {"limits": MAP_S, "requests": MAP_S},
             "ports": [{"containerPort": I, "protocol": S, "name": S}],
             "env": [{"name": S, "value": S, "valueFrom": {"fieldRef": {"apiVersion": S,
                                                                         "fieldPath": S}}}],
             "volumeMounts": [{"name": S, "mountPath": S}], "livenessProbe": PROBE,
             "readinessProbe": PROBE, "startupProbe": PROBE,
             "terminationMessagePath": S, "terminationMessagePolicy": S}
NODE_TERMS = {"nodeSelectorTerms": [{"matchExpressions": [{"key": S, "operator": S,
                                                           "values": LIST_S}],
                                     "matchFields": [{"key": S, "operator": S,
                                                      "values": LIST_S}]}]}
POD_SPEC = {"containers": [CONTAINER], "initContainers": [CONTAINER],
            "volumes": [{"name": S, "configMap": {}, "secret": {}, "projected": {},
                         "downwardAPI": {}, "hostPath": {}}],
            "restartPolicy": S, "terminationGracePeriodSeconds": I,
            "activeDeadlineSeconds": I, "dnsPolicy": S, "nodeSelector": MAP_S,
            "serviceAccountName": S, "serviceAccount": S, "automountServiceAccountToken": B,
            "nodeName": S, "hostNetwork": B, "schedulerName": S, "securityContext": {},
            "tolerations": [{"key": S, "operator": S, "value": S, "effect": S,
                             "tolerationSeconds": I}],
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": NODE_TERMS}},
            "schedulingGates": [{"name": S}], "readinessGates": [{}],
            "priority": I, "enableServiceLinks": B}
CONDITIONS = [{"type": S, "status": S, "reason": S, "message": S}]
POD = {"spec": POD_SPEC, "status": {
    "phase": S, "reason": S, "podIP": S, "nominatedNodeName": S, "qosClass": S,
    "conditions": CONDITIONS,
    "containerStatuses": [{"name": S, "ready": B, "restartCount": I, "state": {
        "waiting": {"reason": S}, "terminated": {"reason": S, "exitCode": I, "signal": I}}}]}}
TEMPLATE = {"metadata": META, "spec": POD_SPEC}
WORKLOAD = {"spec": {"replicas": I, "selector": LABEL_SELECTOR, "template": TEMPLATE,
                     "strategy": {"type": S, "rollingUpdate": {}},
                     "updateStrategy": {"type": S, "rollingUpdate": {}},
                     "revisionHistoryLimit": I, "progressDeadlineSeconds": I},
            "status": {"replicas": I, "readyReplicas": I, "updatedReplicas": I,
                       "availableReplicas": I, "conditions": CONDITIONS}}
NODE = {"spec": {"taints": [{"key": S, "value": S, "effect": S}], "unschedulable": B,
                 "podCIDRs": LIST_S},
        "status": {"capacity": MAP_S, "allocatable": MAP_S, "conditions": CONDITIONS,
                   "addresses": [{"type": S, "address": S}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": I}},
                   "nodeInfo": {"kubeletVersion": S}}}
OBJREF = {"kind": S, "namespace": S, "name": S, "uid": S, "apiVersion": S,
          "resourceVersion": S, "fieldPath": S}
EVENT = {"involvedObject": OBJREF, "reason": S, "message": S, "type": S, "count": I,
         "source": {"component": S, "host": S}, "firstTimestamp": S, "lastTimestamp": S,
         "eventTime": S, "reportingComponent": S, "reportingInstance": S}
WEBHOOKS = {"webhooks": [{
    "name": S, "failurePolicy": S, "sideEffects": S, "timeoutSeconds": I,
    "clientConfig": {"url": S, "caBundle": S,
                     "service": {"namespace": S, "name": S, "path": S, "port": I}},
    "rules": [{"operations": LIST_S, "apiGroups": LIST_S, "apiVersions": LIST_S,
               "resources": LIST_S, "scope": S}],
    "namespaceSelector": LABEL_SELECTOR, "objectSelector": LABEL_SELECTOR}]}
CRD = {"status": {"conditions": CONDITIONS, "acceptedNames": {}, "storedVersions": LIST_S},
       "spec": {"group": S, "scope": S, "names": {"plural": S, "singular": S, "kind": S,
                                                  "shortNames": LIST_S, "categories": LIST_S},
                "versions": [{"name": S, "served": B, "storage": B, "subresources": {
                    "status": {}, "scale": {"specReplicasPath": S, "statusReplicasPath": S,
                                            "labelSelectorPath": S}},
                    "additionalPrinterColumns": [{"name": S, "type": S, "jsonPath": S,
                                                  "priority": I, "format": S}],
                    "selectableFields": [{"jsonPath": S}]}]}}
KINDS = {
    "Pod": POD, "Node": NODE, "Event": EVENT, "Deployment": WORKLOAD,
    "StatefulSet": WORKLOAD, "ReplicaSet": WORKLOAD, "DaemonSet": WORKLOAD,
    "Service": {"spec": {"type": S, "clusterIP": S, "externalIPs": LIST_S, "selector": MAP_S,
                         "ports": [{"name": S, "port": I, "protocol": S}]}},
    "Namespace": {"spec": {"finalizers": LIST_S}, "status": {"phase": S}},
    "ConfigMap": {"data": MAP_S, "binaryData": MAP_S},
    "Secret": {"data": MAP_S, "stringData": MAP_S, "type": S},
    "ServiceAccount": {"secrets": [{}]},
    "Lease": {"spec": {"holderIdentity": S, "leaseDurationSeconds": I}},
    "CustomResourceDefinition": CRD,
    "MutatingWebhookConfiguration": WEBHOOKS, "ValidatingWebhookConfiguration": WEBHOOKS,
}
DELETE_OPTIONS_FIELDS = {"gracePeriodSeconds": I, "propagationPolicy": S,
                         "orphanDependents": B, "dryRun": LIST_S,
                         "preconditions": {"uid": S, "resourceVersion": S}}
BINDING = {"target": {"kind": S, "name": S}}
EVICTION = {"deleteOptions": DELETE_OPTIONS_FIELDS}


def _json_type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _fail(kind, path, value, want):
    raise bad_request('%s cannot be handled as a %s: json: cannot unmarshal %s into Go '
                      'struct field %s of type %s' % (kind, kind, _json_type(value), path, want))


def _check(kind, schema, value, path, prune):
    """Check value against schema; return it with nulls dropped when prune is set."""
    if schema == S:
        if not isinstance(value, str):
            _fail(kind, path, value, "string")
        return value
    if schema == B:
        if not isinstance(value, bool):
            _fail(kind, path, value, "bool")
        return value
    if schema == I:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(kind, path, value, "int")
        return value
    if isinstance(schema, list):
        if not isinstance(value, list):
            _fail(kind, path, value, "[]" + ("string" if schema[0] == S else "object"))
        return [_check(kind, schema[0], v, "%s[%d]" % (path, i), prune)
                for i, v in enumerate(value) if not (prune and v is None)]
    if not isinstance(value, dict):
        _fail(kind, path, value, "map" if "*" in schema else "object")
    out = {}
    for key, v in value.items():
        if v is None and prune:
            continue
        sub = schema.get("*", schema.get(key))
        out[key] = v if sub is None or v is None else _check(
            kind, sub, v, "%s.%s" % (path, key) if path else key, prune)
    return out


def check_object(rtype, obj):
    """The object with built-in nulls dropped, or a 400 for a wrongly typed field."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON object")
    schema = dict(KINDS.get(rtype.kind, {}) if rtype.builtin else {})
    if rtype.builtin:
        schema.setdefault("spec", {})
        schema.setdefault("status", {})
    schema["metadata"] = META
    return _check(rtype.kind, schema, obj, "", rtype.builtin)


def check_scale(obj):
    return _check("Scale", {"metadata": META, "spec": {"replicas": I}}, obj, "", True)


def check_named(kind, schema, obj):
    """Check a body that is not a stored kind (Binding, Eviction)."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON object")
    return _check(kind, dict(schema, metadata=META), obj, "", True)


def check_delete_options(opts):
    return _check("DeleteOptions", DELETE_OPTIONS_FIELDS, opts, "", True)
