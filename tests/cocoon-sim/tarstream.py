"""Strict streaming tar reader for the cocoon double's `snapshot import`.

Python's tarfile is too forgiving for a double that must refuse what cocoon refuses: in
stream mode it takes a bad header or a missing end-of-archive marker in the middle of an
archive for the end of it, so a truncated export would import "successfully". This reader
accepts ustar/PAX (and GNU 'L'/'K' long names), checks every header checksum and numeric
field, requires the two-zero-block end marker, and parses the COCOON.sparse.* records of
net-epoch-runtime.md §2.6. Every error names the entry and what was wrong.
"""

import errno
import json
import os
import re

BLOCK = 512
ZERO = bytes(BLOCK)
PAX_HEADER_MAX = 1 << 20
PAX_RECORDS_MAX = 1024
NAME_MAX = 4096
CHUNK = 1 << 20


class TarError(Exception):
    pass


def _read_exact(f, n):
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _number(field, what, ctx, allow_negative=False):
    if field[0] in (0x80, 0xFF):
        # GNU base-256: 0x80 then a big-endian magnitude, or 0xFF and two's complement.
        v = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            if not allow_negative:
                raise TarError(f"{ctx}: {what}: negative base-256 number")
            v = int.from_bytes(field, "big") - (1 << (8 * len(field)))
        if not -(1 << 63) <= v < (1 << 63):
            raise TarError(f"{ctx}: {what}: base-256 number out of range")
        return v
    s = field.decode("latin-1")
    m = re.fullmatch(r" *([0-7]*)[ \0]*", s)
    if not m or (not m.group(1) and s.strip(" \0") != ""):
        raise TarError(f"{ctx}: {what}: invalid octal number")
    return int(m.group(1), 8) if m.group(1) else 0


def _cstr(b):
    return b.split(b"\0", 1)[0]


def check_name(name, what, ctx):
    if not name:
        raise TarError(f"{ctx}: {what}: empty")
    if len(name) > NAME_MAX:
        raise TarError(f"{ctx}: {what}: longer than {NAME_MAX} bytes")
    if "\0" in name:
        raise TarError(f"{ctx}: {what}: contains a NUL byte")
    if name.startswith("/"):
        raise TarError(f"{ctx}: {what}: absolute path")
    if ".." in name.split("/"):
        raise TarError(f"{ctx}: {what}: contains a \"..\" component")


def _pax_records(data, ctx):
    out, pos, n = {}, 0, 0
    while pos < len(data):
        n += 1
        if n > PAX_RECORDS_MAX:
            raise TarError(f"{ctx}: PAX header: more than {PAX_RECORDS_MAX} records")
        m = re.match(rb"([0-9]{1,8}) ", data[pos:pos + 9])
        if not m:
            raise TarError(f"{ctx}: PAX record {n}: invalid length")
        length = int(m.group(1))
        if length > len(data) - pos or length < len(m.group(0)) + 3:
            raise TarError(f"{ctx}: PAX record {n}: length {length} does not fit the header")
        rec = data[pos + len(m.group(0)):pos + length]
        if not rec.endswith(b"\n"):
            raise TarError(f"{ctx}: PAX record {n}: missing newline")
        key, eq, value = rec[:-1].partition(b"=")
        if not eq or not key or b"\0" in key:
            raise TarError(f"{ctx}: PAX record {n}: invalid key")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def parse_sparse_map(text, logical, ctx):
    """[{"o":offset,"l":length},...]: sorted, non-overlapping, within the logical size."""
    try:
        segs = json.loads(text)
    except ValueError as e:
        raise TarError(f"{ctx}: COCOON.sparse.map: invalid JSON: {e}") from None
    if not isinstance(segs, list):
        raise TarError(f"{ctx}: COCOON.sparse.map: not a JSON array")
    out, end = [], 0
    for i, s in enumerate(segs):
        ok = (isinstance(s, dict) and set(s) == {"o", "l"} and
              all(type(s[k]) is int and s[k] >= 0 for k in "ol"))
        if not ok:
            raise TarError(f"{ctx}: COCOON.sparse.map: segment {i}: want {{\"o\":N,\"l\":N}}")
        o, ln = s["o"], s["l"]
        if ln == 0 or o < end or o + ln > logical:
            raise TarError(f"{ctx}: COCOON.sparse.map: segment {i}: {o}+{ln} is empty, "
                           f"overlaps, or goes beyond the logical size {logical}")
        out.append((o, ln))
        end = o + ln
    return out


class Input:
    """A reader over a raw fd whose buffer is its own, so that data can also be handed to
    another fd by splice(2) without passing through Python (the double's import must not be
    what limits an epoch pull). Reads may return fewer bytes than asked, as raw reads do."""

    def __init__(self, raw):
        self.raw, self.fd, self.buf, self.can_splice = raw, raw.fileno(), b"", True

    def peek(self, n):
        while len(self.buf) < n:
            b = os.read(self.fd, max(n - len(self.buf), CHUNK))
            if not b:
                break
            self.buf += b
        return self.buf[:n]

    def read(self, n):
        if self.buf:
            b, self.buf = self.buf[:n], self.buf[n:]
            return b
        return os.read(self.fd, n)

    def copy_into(self, fd, offset, n):
        """Write the next n bytes to fd at offset; returns how many there were."""
        done = 0
        while done < n:
            if self.buf or not self.can_splice:
                b = self.read(min(CHUNK, n - done))
                if not b:
                    break
                os.pwrite(fd, b, offset + done)  # a regular file takes it all
                done += len(b)
                continue
            try:
                k = os.splice(self.fd, fd, n - done, offset_dst=offset + done)
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: the input is not a pipe
                    raise
                self.can_splice = False
                continue
            if not k:
                break
            done += k
        return done


class Entry:
    """One archive member; read its data with chunks() before asking for the next one."""

    def __init__(self, f, ctx, name, typeflag, mode, size, mtime, pax):
        self._f, self.ctx = f, ctx
        self.name, self.type, self.mode, self.size, self.mtime = name, typeflag, mode, size, mtime
        self.pax = pax
        self.sparse_map, self.sparse_size = None, None
        self.remaining = size

    def chunks(self):
        while self.remaining:
            b = self._f.read(min(CHUNK, self.remaining))
            if not b:
                raise TarError(f"{self.ctx}: truncated: {self.remaining} of {self.size} "
                               "data bytes missing")
            self.remaining -= len(b)
            yield b

    def copy_into(self, fd, offset, n):
        """Write the next n data bytes to fd at offset: by splice(2) when the archive is read
        from an Input, else through chunks of memory."""
        n = min(n, self.remaining)
        if isinstance(self._f, Input):
            got = self._f.copy_into(fd, offset, n)
        else:
            got = 0
            while got < n:
                b = self._f.read(min(CHUNK, n - got))
                if not b:
                    break
                os.pwrite(fd, b, offset + got)
                got += len(b)
        self.remaining -= got
        if got < n:
            raise TarError(f"{self.ctx}: truncated: {self.remaining} of {self.size} "
                           "data bytes missing")

    def _skip(self):
        for _ in self.chunks():
            pass
        pad = -self.size % BLOCK
        if len(_read_exact(self._f, pad)) != pad:
            raise TarError(f"{self.ctx}: truncated inside the padding after the data")


def _apply_pax(e, pax):
    ctx = e.ctx
    for k, v in pax.items():
        if k.startswith("GNU.sparse."):
            raise TarError(f"{ctx}: PAX record \"{k}\": GNU sparse archives are not supported")
        if k in ("path", "linkpath", "size", "mtime") and "\0" in v:
            raise TarError(f"{ctx}: PAX record \"{k}\": contains a NUL byte")
    if "path" in pax:
        e.name = pax["path"]
    if "size" in pax:
        if not re.fullmatch(r"[0-9]+", pax["size"]) or int(pax["size"]) >= 1 << 63:
            raise TarError(f"{ctx}: PAX record \"size\": not a decimal number in range")
        e.size = e.remaining = int(pax["size"])
    if "mtime" in pax:
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", pax["mtime"]):
            raise TarError(f"{ctx}: PAX record \"mtime\": invalid")
        e.mtime = int(pax["mtime"].split(".")[0])
    smap, ssize = pax.get("COCOON.sparse.map"), pax.get("COCOON.sparse.size")
    if (smap is None) != (ssize is None):
        raise TarError(f"{ctx}: COCOON.sparse.map and COCOON.sparse.size come together")
    if smap is not None:
        if not re.fullmatch(r"[0-9]+", ssize) or int(ssize) >= 1 << 63:
            raise TarError(f"{ctx}: COCOON.sparse.size: not a decimal number in range")
        e.sparse_size = int(ssize)
        e.sparse_map = parse_sparse_map(smap, e.sparse_size, ctx)
        packed = sum(ln for _, ln in e.sparse_map)
        if packed != e.size:
            raise TarError(f"{ctx}: COCOON.sparse.map: segments hold {packed} bytes but the "
                           f"entry has {e.size}")


def entries(f):
    """Yield Entry objects for the real members of the archive read from f."""
    glob, local, longname, offset, index = {}, None, None, 0, 0
    while True:
        hdr = _read_exact(f, BLOCK)
        ctx = f"entry {index + 1} (header at offset {offset})"
        if len(hdr) < BLOCK:
            raise TarError(f"offset {offset}: truncated: " +
                           ("the end-of-archive marker is missing" if not hdr
                            else f"header has {len(hdr)} of 512 bytes"))
        offset += BLOCK
        if hdr == ZERO:
            if local is not None or longname is not None:
                raise TarError(f"{ctx}: extended header not followed by an entry")
            second = _read_exact(f, BLOCK)
            if len(second) < BLOCK:
                raise TarError(f"offset {offset}: truncated: the end-of-archive marker is "
                               "missing")
            if second != ZERO:
                raise TarError(f"{ctx}: a lone zero block before a header")
            return
        raw = _cstr(hdr[0:100]).decode("utf-8", "surrogateescape")
        ctx = f"entry {index + 1} \"{raw}\" (header at offset {offset - BLOCK})"
        stored = _number(hdr[148:156], "header checksum", ctx)
        chk = hdr[:148] + b" " * 8 + hdr[156:]
        if stored not in (sum(chk), sum(b - 256 if b > 127 else b for b in chk)):
            raise TarError(f"{ctx}: header checksum mismatch")
        posix = hdr[257:265] == b"ustar\x0000"
        if not posix and hdr[257:265] != b"ustar  \0":
            raise TarError(f"{ctx}: magic: not a ustar header")
        mode = _number(hdr[100:108], "mode", ctx)
        size = _number(hdr[124:136], "size", ctx)
        mtime = _number(hdr[136:148], "mtime", ctx, allow_negative=True)
        t = chr(hdr[156])
        if t in "xgLK":
            cap = PAX_HEADER_MAX if t in "xg" else NAME_MAX + 1
            if size > cap:
                raise TarError(f"{ctx}: extended header of {size} bytes exceeds the cap of {cap}")
            data = _read_exact(f, size + (-size % BLOCK))
            if len(data) < size + (-size % BLOCK):
                raise TarError(f"{ctx}: truncated inside an extended header")
            offset += len(data)
            data = data[:size]
            if t == "x":
                if local is not None:
                    raise TarError(f"{ctx}: two PAX headers for one entry")
                local = _pax_records(data, ctx)
            elif t == "g":
                for k, v in _pax_records(data, ctx).items():
                    if v:
                        glob[k] = v
                    else:
                        glob.pop(k, None)
            elif t == "L":
                longname = _cstr(data).decode("utf-8", "surrogateescape")
            continue
        if t in ("\0", "7"):
            t = "0"
        if t not in "0123456":
            raise TarError(f"{ctx}: type {t!r}: not supported")
        name = raw
        prefix = _cstr(hdr[345:500]).decode("utf-8", "surrogateescape")
        if longname is not None:
            name = longname
        elif posix and prefix:
            name = prefix + "/" + raw
        pax = dict(glob)
        for k, v in (local or {}).items():
            if v:
                pax[k] = v
            else:
                pax.pop(k, None)
        index += 1
        e = Entry(f, ctx, name, t, mode & 0o7777, size, mtime, pax)
        _apply_pax(e, pax)
        e.ctx = ctx = f"entry {index} \"{e.name}\" (header at offset {offset - BLOCK})"
        check_name(e.name, "name", ctx)
        if t != "0" and e.size:
            raise TarError(f"{ctx}: size: {e.size} but a non-regular entry has no data")
        if e.sparse_map is not None and t != "0":
            raise TarError(f"{ctx}: sparse records on a non-regular entry")
        local, longname = None, None
        yield e
        e._skip()
        offset += e.size + (-e.size % BLOCK)
