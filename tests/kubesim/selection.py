"""Label and field selectors (kube-api.md §1.6).

Owns the parsers for both grammars and their matching; a parse error is an ApiError 400
naming the offending text, as the real server answers a bad ?labelSelector=.
"""

import re

from apierrors import bad_request

_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SPECIAL = "!=(),<>"


def _check_key(key):
    if "/" in key:
        prefix, name = key.split("/", 1)
        if not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix):
            return "prefix part of key %r must be a DNS-1123 subdomain" % key
    else:
        name = key
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        return ("name part of key %r must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character" % key)
    return None


def _check_value(value):
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        return ("invalid label value %r: a valid label must be an empty string or consist of "
                "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character" % value)
    return None


def _tokens(text):
    """Yield (kind, text) with kind one of id, op, (, ), ','."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("==", i) or text.startswith("!=", i):
            yield "op", text[i:i + 2]
            i += 2
        elif c in "=<>":
            yield "op", c
            i += 1
        elif c == "!":
            yield "not", c
            i += 1
        elif c in "(),":
            yield c, c
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            yield "id", text[i:j]
            i = j


class LabelSelector:
    """A parsed label selector: a list of (key, operator, values) ANDed together."""

    def __init__(self, reqs):
        self.reqs = reqs

    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, values in self.reqs:
            has = key in labels
            val = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!exists" and has:
                return False
            if op in ("=", "in") and (not has or val not in values):
                return False
            if op in ("!=", "notin") and has and val in values:
                return False
            if op in (">", "<"):
                try:
                    num = int(val) if has else None
                except ValueError:
                    num = None
                if num is None or (op == ">" and not num > values[0]) or \
                        (op == "<" and not num < values[0]):
                    return False
        return True


class _Parser:
    def __init__(self, text):
        self.text = text
        self.toks = list(_tokens(text))
        self.pos = 0

    def peek(self):
        return self.toks[self.pos] if self.pos < len(self.toks) else (None, "end of string")

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def fail(self, found, expected):
        raise bad_request("unable to parse requirement: found '%s', expected: %s in selector %r"
                          % (found, expected, self.text))

    def values(self):
        kind, tok = self.take()
        if kind != "(":
            self.fail(tok, "'('")
        values = []
        while True:
            kind, tok = self.take()
            if kind == "id":
                values.append(tok)
                kind, tok = self.take()
            if kind == ")":
                return values
            if kind != ",":
                self.fail(tok, "',' or ')'")

    def requirement(self):
        kind, tok = self.take()
        negate = kind == "not"
        if negate:
            kind, tok = self.take()
        if kind != "id":
            self.fail(tok, "identifier")
        key = tok
        err = _check_key(key)
        if err:
            raise bad_request("unable to parse requirement: " + err)
        kind, tok = self.peek()
        if negate or kind in (None, ","):
            return key, "!exists" if negate else "exists", []
        self.take()
        if kind == "op":
            op = "=" if tok in ("=", "==") else tok
            vkind, val = self.peek()
            if vkind == "id":
                self.take()
            elif vkind in (None, ",") and op in ("=", "!="):
                val = ""
            else:
                self.fail(val, "value")
            if op in (">", "<"):
                try:
                    return key, op, [int(val)]
                except ValueError:
                    raise bad_request("unable to parse requirement: for 'gt', 'lt' operators, "
                                      "the value must be an integer: %r" % val) from None
            values = [val]
        elif kind == "id" and tok in ("in", "notin"):
            op = tok
            values = self.values()
        else:
            self.fail(tok, "in, notin, =, ==, !=, gt, lt")
        for v in values:
            err = _check_value(v)
            if err:
                raise bad_request("unable to parse requirement: " + err)
        return key, op, values


def parse_labels(text):
    """Parse the full label-selector grammar; raises a 400 ApiError on bad input."""
    p = _Parser(text or "")
    reqs = []
    while p.peek()[0] is not None:
        reqs.append(p.requirement())
        kind, tok = p.take()
        if kind not in (None, ","):
            p.fail(tok, "',' or 'end of string'")
    return LabelSelector(reqs)


def selector_from_label_selector(sel):
    """Turn a metav1.LabelSelector object (matchLabels/matchExpressions) into a matcher."""
    if sel is None:
        return None
    reqs = []
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        reqs.append((k, "=", [v]))
    for expr in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists",
              "DoesNotExist": "!exists"}.get(expr.get("operator"))
        if op is None:
            raise bad_request("%r is not a valid label selector operator" % expr.get("operator"))
        reqs.append((expr.get("key", ""), op, list(expr.get("values") or [])))
    return LabelSelector(reqs)


def format_label_selector(sel):
    """The string form of a metav1.LabelSelector, as Scale.status.selector carries it."""
    parts = []
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        parts.append("%s=%s" % (k, v))
    for expr in sel.get("matchExpressions") or []:
        op = expr.get("operator") or ""
        key = expr.get("key", "")
        if op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append("!" + key)
        else:
            values = ",".join(sorted(expr.get("values") or []))
            parts.append("%s %s (%s)" % (key, op.lower(), values))
    return ",".join(parts)


def _split_unescaped(text, sep):
    out, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(value):
    return re.sub(r"\\(.)", r"\1", value)


def parse_fields(text):
    """Parse a field selector into [(field, op, value)] with op '=' or '!='."""
    reqs = []
    if not text:
        return reqs
    for term in _split_unescaped(text, ","):
        if term == "":
            continue
        m = re.match(r"^((?:[^\\=!]|\\.)*?)(!=|==|=)(.*)$", term)
        if not m or not m.group(1):
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, term))
        op = "!=" if m.group(2) == "!=" else "="
        reqs.append((m.group(1).strip(), op, _unescape(m.group(3))))
    return reqs


def check_fields(reqs, supported):
    """400 for a field the resource does not index, as the real server answers."""
    for field, _, _ in reqs:
        if field not in supported:
            raise bad_request('field label not supported: %s' % field)


def match_fields(reqs, fields):
    for field, op, value in reqs:
        have = fields.get(field, "")
        if (op == "=") != (have == value):
            return False
    return True
