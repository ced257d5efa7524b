"""Byte-level builder for dlsys's canonical archive form, with knobs to break exactly one thing.

The canonical form (what `dlsys pack` writes and the only form `dlsys verify` accepts):

- entries, then exactly two 512-byte zero blocks, then nothing;
- an entry is [pax 'x' header iff the path is over 100 bytes or the size is at least 8**11]
  + ustar header + data zero-padded to a multiple of 512;
- every header field is fixed by (path, size, mtime); see `header()`;
- optionally wrapped whole in ONE gzip member with the header 1f 8b 08 00 00000000 00 03, or
  ONE zstd frame with a content checksum, no dictionary id and a window of at most 8 MiB.

This is byte-for-byte what Python's tarfile writes with format=PAX_FORMAT, uid=gid=0,
uname=gname="", mode=0o644 and an integer mtime, minus its padding to 10240 bytes.

Everything here works on bytes; nothing touches the file system except `zstd_frame`, which runs
the zstd command-line tool.
"""
import struct
import subprocess
import zlib

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
END = bytes(2 * BLOCK)  # the end-of-archive marker
MAX_USTAR_SIZE = 8 ** 11  # sizes from here on need a pax 'size' record

# ustar header fields: name -> (start, end)
FIELDS = {
    "name": (0, 100), "mode": (100, 108), "uid": (108, 116), "gid": (116, 124),
    "size": (124, 136), "mtime": (136, 148), "chksum": (148, 156), "typeflag": (156, 157),
    "linkname": (157, 257), "magic": (257, 263), "version": (263, 265), "uname": (265, 297),
    "gname": (297, 329), "devmajor": (329, 337), "devminor": (337, 345), "prefix": (345, 500),
    "pad": (500, 512),
}
GNU_MAGIC = {"magic": b"ustar ", "version": b" \0"}  # old GNU tar's magic + version


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def octal(n, width):
    """A numeric field: width-1 zero-padded octal digits and a NUL."""
    return b"%0*o\0" % (width - 1, n)


def pad(data, fill=b"\0"):
    """data padded with `fill` to a multiple of 512."""
    return data + fill * (-len(data) % BLOCK)


def checksum(hdr):
    """The ustar checksum: the byte sum with the chksum field counted as 8 spaces."""
    return sum(hdr[:148]) + 8 * 32 + sum(hdr[156:512])


def header(name, size, mtime, typeflag="0", mode=b"0000644\0", fields=None, raw=()):
    """One canonical 512-byte ustar header.

    name: bytes/str, stored as name[:100]; size, mtime: ints (size >= 8**11 is stored as 0).
    fields: {field: bytes} replaces a whole field (NUL-padded to its width; must fit).
    raw: [(offset, bytes)] written over the header after `fields`.
    The checksum is computed last, unless `fields` sets "chksum" explicitly.
    """
    h = bytearray(BLOCK)
    values = {
        "name": _b(name)[:100], "mode": mode, "uid": b"0000000\0", "gid": b"0000000\0",
        "size": octal(size if size < MAX_USTAR_SIZE else 0, 12), "mtime": octal(mtime, 12),
        "chksum": b" " * 8, "typeflag": _b(typeflag), "magic": b"ustar\0", "version": b"00",
        "devmajor": b"", "devminor": b"",
    }
    values.update(fields or {})
    for field, value in values.items():
        start, end = FIELDS[field]
        value = _b(value)
        assert len(value) <= end - start, (field, value)
        h[start:start + len(value)] = value
    for offset, value in raw:
        h[offset:offset + len(value)] = _b(value)
    if "chksum" not in (fields or {}):
        h[148:156] = b"%06o\0 " % checksum(h)
    return bytes(h)


def pax_record(key, value):
    """'<n> key=value\\n' where n is the length of the whole record, n's own digits included."""
    body = b" %s=%s\n" % (_b(key), _b(value))
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n = len(b"%d" % n) + len(body)
    return b"%d" % n + body


def pax_header(records, typeflag="x", name="././@PaxHeader", fields=None, raw=()):
    """A pax extended header ('x') or global header ('g') block plus its zero-padded records.
    records: [(key, value)] or raw bytes (written as given, e.g. a record with a wrong length)."""
    data = records if isinstance(records, bytes) else b"".join(pax_record(k, v) for k, v in records)
    hdr = header(name, len(data), 0, typeflag, mode=b"0000000\0", fields=fields, raw=raw)
    return hdr + pad(data)


def canonical_pax_records(path, size):
    """The records dlsys writes: path iff the path is over 100 bytes, size iff >= 8**11."""
    records = []
    if len(_b(path)) > 100:
        records.append(("path", _b(path)))
    if size >= MAX_USTAR_SIZE:
        records.append(("size", b"%d" % size))
    return records


def entry_header(path, size, mtime, pax=None, extra_pax=(), **kw):
    """The header blocks of one entry: [pax 'x'] + ustar. pax=None writes the canonical records;
    a list replaces them ([] = none); extra_pax is appended. kw goes to header()."""
    records = list(canonical_pax_records(path, size) if pax is None else pax) + list(extra_pax)
    head = pax_header(records) if records else b""
    return head + header(path, size, mtime, **kw)


def entry(path, data, mtime, padding=b"\0", **kw):
    """One entry: headers (see entry_header; kw may override size=) + data padded with
    `padding` bytes (canonical: NUL)."""
    size = kw.pop("size", len(data))
    return entry_header(path, size, mtime, **kw) + pad(data, padding)


def archive(parts, end=END):
    """Concatenates entries (bytes) and the end marker (`end`: END, ZERO_BLOCK, b"", ...)."""
    return b"".join(parts) + end


def canonical_entries(files, mtime):
    """[(path, data)] -> [entry bytes], in the given order."""
    return [entry(p, d, mtime) for p, d in files]


def canonical(files, mtime):
    """A whole canonical tar stream of [(path, data)], in the given order."""
    return archive(canonical_entries(files, mtime))


# --- other tar dialects --------------------------------------------------------------------------

def gnu_long(name, typeflag="L", **kw):
    """A GNU 'L' (long name) or 'K' (long link name) header + data, as GNU tar writes them; the
    next header's name (or linkname) is replaced by `name` in GNU-aware readers."""
    data = _b(name) + b"\0"
    fields = dict(GNU_MAGIC, uname=b"root", gname=b"root")
    fields.update(kw.pop("fields", {}))
    return header("././@LongLink", len(data), 0, typeflag, fields=fields, **kw) + pad(data)


def sparse_chunks(data):
    """[(offset, length)] of the data regions of data, with every run of all-zero 512-byte
    blocks (except at the end) left out as a hole. Chunks start on block boundaries and all but
    the last are whole blocks, as GNU tar requires (it reads each chunk from a fresh block)."""
    chunks, start = [], 0
    for pos in range(0, len(data), BLOCK):
        if data[pos:pos + BLOCK] == ZERO_BLOCK and pos + BLOCK < len(data):
            if pos > start:
                chunks.append((start, pos - start))
            start = pos + BLOCK
    chunks.append((start, len(data) - start))
    return chunks


def old_gnu_sparse_entry(path, data, mtime, chunks=None):
    """An old-GNU sparse entry (typeflag 'S', at most 4 chunks): GNU tar and libarchive extract
    `data`, but the header's size field counts only the stored chunks."""
    chunks = chunks or sparse_chunks(data)
    assert len(chunks) <= 4, "more chunks need extension headers"
    stored = b"".join(data[o:o + n] for o, n in chunks)
    raw = [(386 + 24 * i, octal(o, 12) + octal(n, 12)) for i, (o, n) in enumerate(chunks)]
    raw += [(482, b"\0"), (483, octal(len(data), 12))]  # isextended, realsize
    return header(path, len(stored), mtime, "S", fields=dict(GNU_MAGIC), raw=raw) + pad(stored)


def pax_sparse_entry(path, data, mtime, chunks=None):
    """A GNU pax sparse entry, format 1.0 (what `tar --sparse --format=pax` writes): records
    GNU.sparse.major/minor/name/realsize; the data starts with the decimal chunk map."""
    chunks = chunks or sparse_chunks(data)
    sparse_map = b"%d\n" % len(chunks) + b"".join(b"%d\n%d\n" % c for c in chunks)
    stored = pad(sparse_map) + b"".join(data[o:o + n] for o, n in chunks)
    records = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", path),
               ("GNU.sparse.realsize", str(len(data)))]
    return pax_header(records) + header(path, len(stored), mtime) + pad(stored)


# --- gzip ----------------------------------------------------------------------------------------

GZIP_HEADER = bytes.fromhex("1f8b0800000000000003")  # the only gzip header dlsys accepts


def gzip_header(mtime=0, xfl=0, os=3, name=None, extra=None, comment=None, hcrc=False, flags=0):
    """A gzip member header (RFC 1952); the defaults give GZIP_HEADER. `flags` is ORed in raw
    (e.g. a reserved bit) without adding fields."""
    flg = flags | (4 if extra is not None else 0) | (8 if name is not None else 0) \
        | (16 if comment is not None else 0) | (2 if hcrc else 0)
    h = struct.pack("<BBBBIBB", 0x1f, 0x8b, 8, flg, mtime, xfl, os)
    if extra is not None:
        h += struct.pack("<H", len(extra)) + extra
    if name is not None:
        h += _b(name) + b"\0"
    if comment is not None:
        h += _b(comment) + b"\0"
    if hcrc:
        h += struct.pack("<H", zlib.crc32(h) & 0xffff)
    return h


def gzip_member(data, level=6, header=GZIP_HEADER):
    """One gzip member: `header` + raw deflate + CRC32 + ISIZE. With the defaults this equals
    zlib.compressobj(6, zlib.DEFLATED, 31) output (whose XFL is 0 at level 6; at other levels
    the header is still forced to `header`)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xffffffff)


def gunzip_members(blob):
    """[(header bytes, decompressed data)] of every member; raises on anything else."""
    out = []
    while blob:
        d = zlib.decompressobj(31)
        data = d.decompress(blob) + d.flush()
        if not d.eof:
            raise ValueError("truncated gzip member")
        out.append((blob[:10], data))
        blob = d.unused_data
    return out


# --- zstd ----------------------------------------------------------------------------------------

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_frame(data, *args):
    """One zstd frame from the zstd CLI fed through stdin (so no content size): by default
    level 3 with a content checksum. args are extra CLI flags (--no-check, --zstd=wlog=24)."""
    return subprocess.run(["zstd", "-3", "--check", "-q", "-c", *args], input=data,
                          capture_output=True, check=True).stdout


def skippable_frame(payload=b"", nibble=0):
    """A skippable frame (magic 0x184D2A50 + nibble) carrying payload."""
    return struct.pack("<II", 0x184D2A50 + nibble, len(payload)) + payload


def zstd_frames(blob, strict=True):
    """Walks a zstd stream: [dict(offset, end, skippable, checksum, dict_id, window,
    content_size)] per frame; raises ValueError on anything that is not a frame (strict) or
    stops there (strict=False)."""
    frames, pos = [], 0
    while pos < len(blob):
        start = pos
        magic = struct.unpack_from("<I", blob + bytes(4), pos)[0]
        if not strict and magic != 0xFD2FB528 and not 0x184D2A50 <= magic <= 0x184D2A5F:
            break
        if 0x184D2A50 <= magic <= 0x184D2A5F:
            n = struct.unpack_from("<I", blob, pos + 4)[0]
            pos += 8 + n
            frames.append(dict(offset=start, end=pos, skippable=True))
            continue
        if blob[pos:pos + 4] != ZSTD_MAGIC:
            raise ValueError("not a zstd frame at offset %d" % pos)
        fhd = blob[pos + 4]
        pos += 5
        fcs_flag, single, has_checksum, dict_flag = fhd >> 6, fhd >> 5 & 1, fhd >> 2 & 1, fhd & 3
        window = None
        if not single:
            wd = blob[pos]
            pos += 1
            base = 1 << (10 + (wd >> 3))
            window = base + (base // 8) * (wd & 7)
        dict_size = [0, 1, 2, 4][dict_flag]
        dict_id = int.from_bytes(blob[pos:pos + dict_size], "little") if dict_size else None
        pos += dict_size
        fcs_size = [1 if single else 0, 2, 4, 8][fcs_flag]
        content_size = int.from_bytes(blob[pos:pos + fcs_size], "little") if fcs_size else None
        if fcs_size == 2:
            content_size += 256
        pos += fcs_size
        if single:
            window = content_size
        while True:
            bh = int.from_bytes(blob[pos:pos + 3], "little")
            pos += 3
            last, kind, size = bh & 1, (bh >> 1) & 3, bh >> 3
            if kind == 3:
                raise ValueError("reserved block type at offset %d" % (pos - 3))
            pos += 1 if kind == 1 else size
            if last:
                break
        pos += 4 if has_checksum else 0
        if pos > len(blob):
            raise ValueError("truncated zstd frame")
        frames.append(dict(offset=start, end=pos, skippable=False, checksum=bool(has_checksum),
                           dict_id=dict_id, window=window, content_size=content_size))
    return frames


def zstd_with_dict_id(frame, dict_id=1):
    """The frame with a 1-byte dictionary id inserted into its header (decoders then need that
    dictionary). Only for frames without one and with a window descriptor (the CLI's via stdin)."""
    fhd = frame[4]
    assert fhd & 3 == 0 and not fhd & 0x20
    return frame[:4] + bytes([fhd | 1]) + frame[5:6] + bytes([dict_id]) + frame[6:]


def unzstd(blob):
    """Decompresses with the zstd CLI (all frames, as `zstd -d` does)."""
    return subprocess.run(["zstd", "-d", "-q", "-c"], input=blob, capture_output=True,
                          check=True).stdout


def decompress(blob):
    """The tar stream inside an archive of any of the three compressions."""
    if blob[:2] == b"\x1f\x8b":
        return b"".join(d for _, d in gunzip_members(blob))
    if blob[:4] == ZSTD_MAGIC:
        return unzstd(blob)
    return blob
