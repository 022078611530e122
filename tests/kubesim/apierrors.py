"""Kubernetes Status error objects (kube-api.md §1.3).

Owns the one exception type every handler raises and the exact shapes and messages of
the Status bodies; clients key on code and reason, people read the message.
"""


class ApiError(Exception):
    """A failed request, rendered as a metav1.Status body with HTTP code `code`."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or []

    def status(self):
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details if self.details is not None else {},
            "code": self.code,
        }
        if self.reason == "":
            del body["reason"]
        return body


def qualified(group, resource):
    """`pods` for core, `deployments.apps` otherwise, as the server prints resources."""
    return resource if not group else "%s.%s" % (resource, group)


def _details(group, resource, name):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = resource
    return d


def not_found(group, resource, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(group, resource), name),
                    _details(group, resource, name))


def path_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(group, resource, name):
    return ApiError(409, "AlreadyExists",
                    '%s "%s" already exists' % (qualified(group, resource), name),
                    _details(group, resource, name))


def conflict(group, resource, name, why=None):
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (qualified(group, resource), name, why), _details(group, resource, name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(group, resource, name, why, cause=None):
    details = _details(group, resource, name)
    if cause:
        details["causes"] = [{"reason": cause, "message": why}]
    subject = '%s "%s"' % (qualified(group, resource), name) if name else qualified(group, resource)
    return ApiError(403, "Forbidden", "%s is forbidden: %s" % (subject, why), details)


def method_not_allowed():
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource")


def unsupported_media(content_type, accepted):
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: " + ", ".join(accepted), {"kind": content_type or ""})


_CAUSE_TYPES = {
    "required": ("FieldValueRequired", "Required value"),
    "invalid": ("FieldValueInvalid", "Invalid value"),
    "forbidden": ("FieldValueForbidden", "Forbidden"),
    "unsupported": ("FieldValueNotSupported", "Unsupported value"),
    "duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "toolong": ("FieldValueTooLong", "Too long"),
}


def invalid(group, kind, name, causes):
    """422 Invalid. causes: (field, type, detail) with type a key of _CAUSE_TYPES; detail
    already carries the quoted bad value where Go's field.Invalid would print one."""
    parts = []
    out = []
    for field, ctype, detail in causes:
        reason, label = _CAUSE_TYPES[ctype]
        text = "%s: %s" % (label, detail) if detail else label
        parts.append("%s: %s" % (field, text) if field else text)
        out.append({"reason": reason, "message": text, "field": field})
    gk = kind if not group else "%s.%s" % (kind, group)
    if len(parts) == 1:
        msg = '%s "%s" is invalid: %s' % (gk, name, parts[0])
    else:
        msg = '%s "%s" is invalid: [%s]' % (gk, name, ", ".join(parts))
    details = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = out
    return ApiError(422, "Invalid", msg, details)


def invalid_plain(message):
    """A 422 without a kind, as the server answers an unappliable JSON patch."""
    return ApiError(422, "Invalid", message)


def expired(message):
    return ApiError(410, "Expired", message)


def internal(message):
    return ApiError(500, "InternalError", "Internal error occurred: " + message,
                    {"causes": [{"message": message}]})


def timeout(message, cause=None):
    details = {}
    if cause:
        details = {"causes": [{"reason": cause, "message": message}], "retryAfterSeconds": 1}
    return ApiError(504, "Timeout", message, details)


def success_status(group, resource, name, uid):
    d = _details(group, resource, name)
    if uid:
        d["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": d}
