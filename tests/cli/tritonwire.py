"""tritonwire: the HTTP requests Triton's Python client (`tritonclient.http`) sends, byte for
byte, over a raw keep-alive socket, and its response decoding - so `dlsys serve` can be tested
against what users' unmodified `tritonclient.http.InferenceServerClient` does, without it.

Read from github:triton-inference-server/client @ 58a44caa0dce77303115302e6dbdf64626b2b093
(2026-05-04, "Reject Triton reserved parameter keys"), src/python/library/tritonclient/, and
github:geventhttpclient/geventhttpclient @ 231947d955c15e414454621c905b0211a604d235 (2.3.8),
src/geventhttpclient/. What each piece mirrors (paths relative to those directories):

URLs and methods (http/_client.py)
  - base URI: URL("http://" + url).request_uri.rstrip("/") is "" for "host:port", and every
    path is base + "/" + path (_get/_post, 240-244 / 286-290); query params appended with "?"
    (_utils.py _get_query_string 77-87, quote_plus).
  - GET v2/health/live, v2/health/ready (364, 394); GET v2/models/{quote(name)}[/versions/{v}]/ready
    (434-439); GET v2 (470); GET v2/models/{quote(name)}[/versions/{v}] (515-520);
    GET v2/models/stats, v2/models/{quote(name)}[/versions/{v}]/stats (744-754);
    POST v2/models/{quote(name)}[/versions/{v}]/infer (1469-1474). The version is NOT quoted.
  - live/ready/model-ready return `status_code == 200` and never read the body (369, 399, 445).

HTTP framing (geventhttpclient client.py _build_request 160-213, request 215-268; header.py)
  - request line "METHOD /path HTTP/1.1"; header lines "Name: value\\r\\n" in this order:
    User-Agent: python/gevent-http-client-<version> (DEFAULT_HEADERS, 55; __init__.py
    __version__ = "2.3.8"), then the caller's headers in insertion order (a name equal to an
    earlier one ignoring case replaces its value and case in place: Headers.__setitem__ 62-63),
    then Host: host[:port] (port omitted for 80/443, IPv6 bracketed; 181-188), then
    Content-Length: N only when the body is non-empty (189-192). Nothing else: no Accept,
    no Content-Type, no Connection, never chunked (_validate_headers rejects a
    Transfer-Encoding header, _client.py 309-338). GETs carry no body and no Content-Length.
  - head and body go out in one sendall (238); HTTP/1.1 keep-alive, one pooled connection per
    client (concurrency=1 -> ConnectionPool size 1); a send failing with ECONNRESET/EPIPE or a
    connection closed before a response is retried on a new connection, size+1 = 2 more times
    (230-265). A response is returned to the pool only when fully read and not
    "Connection: close" (response.py should_close 59-65, release 271-280).

Inference request (http/_utils.py _get_inference_request 90-151; _infer_input.py; _requested_output.py)
  - JSON, compact (python-rapidjson dumps: no spaces, ensure_ascii with upper-case \\uXXXX,
    floats as RapidJSON's Grisu/Prettify writes them: 1.0, 0.5, 1e-7, 1.5e21), key order:
    "id" (only if request_id != "", 103-104), "inputs", "outputs" (only if outputs given),
    "parameters" (only if non-empty: sequence_id/start/end, priority, timeout, then
    "binary_data_output": true when NO outputs were given (119-122), then custom parameters;
    reserved names and "triton_*" are refused client-side, 124-133; utils/__init__.py 39-48).
  - input: {"name","shape","datatype"[,"parameters":{"binary_data_size":N}]["data":[...]]}
    (_get_tensor 254-272). binary: raw little-endian bytes (numpy tobytes; BOOL one byte 0/1;
    BF16 the high 2 bytes of each float32, utils serialize_bf16_tensor 294-335; BYTES 4-byte LE
    length + bytes, serialize_byte_tensor 208-261). JSON "data" is the flat row-major list of
    val.item() (196): FP32/FP16 values are the doubles of the float32/float16 values.
  - output: {"name","parameters":{["classification":k,]"binary_data":bool}} (51-57, 106-117).
  - body = JSON bytes + each binary input's bytes in input order; header
    "Inference-Header-Content-Length: len(json)" only when some input is binary (141-151,
    _client.py 1462-1465).
  - infer header insertion order: caller's headers, Content-Encoding (request compression:
    "gzip" -> gzip.compress(body), "deflate" -> zlib.compress(body), applied to the WHOLE body,
    JSON + binary, 1440-1451), Accept-Encoding ("gzip"/"deflate", 1453-1460),
    Inference-Header-Content-Length (the uncompressed JSON length, 1462-1465).

Responses (http/_utils.py _get_error 40-64; _infer_result.py 54-106, as_numpy 157-210)
  - non-200: body decoded as UTF-8 JSON, message = obj["error"], status = str(HTTP code);
    empty body -> "client received an empty response from the server."; undecodable ->
    "an exception occurred in the client while decoding the response: ..." (str of the
    exception: "[status] message", utils/__init__.py 107-111).
  - infer: Content-Encoding "gzip"/"deflate" (exact, case-sensitive values) is decompressed
    first; without an Inference-Header-Content-Length header (looked up case-insensitively)
    the whole body is the JSON; with it, the first N bytes are JSON and the rest is split
    in the order of "outputs" having parameters.binary_data_size. Content-Type is ignored.
  - as_numpy: binary -> np.frombuffer(dtype) (BOOL 1 byte, FP16, INT64 little-endian),
    BF16 -> float32 with the 2 bytes as the high half, BYTES -> length-prefixed; binary size 0
    -> empty; JSON -> np.array(data, dtype) (FP32 rounds to float32, BOOL via bool());
    then reshape(output["shape"]).

Run `python3 tests/cli/tritonwire.py --selftest` for the literal-bytes self-check.
"""
import errno
import gzip
import json
import math
import socket
import struct
import sys
import zlib
from decimal import Decimal
from urllib.parse import quote, quote_plus

try:  # tritonclient returns numpy arrays; /usr/bin/python3 has numpy, but nothing here needs it
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None

GEVENTHTTPCLIENT_VERSION = "2.3.8"
USER_AGENT = "python/gevent-http-client-" + GEVENTHTTPCLIENT_VERSION

# utils/__init__.py 39-48
RESERVED_PARAMS = ["sequence_id", "sequence_start", "sequence_end", "priority", "timeout",
                   "headers", "binary_data_output"]
RESERVED_PREFIX = "triton_"

# struct formats of the fixed-size types (numpy native order is little-endian on x86/arm64)
_FMT = {"BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q", "UINT8": "B",
        "UINT16": "H", "UINT32": "I", "UINT64": "Q", "FP16": "e", "FP32": "f", "FP64": "d"}
_NP = {"BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
       "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
       "FP16": "float16", "FP32": "float32", "BF16": "float32", "FP64": "float64",
       "BYTES": "object"}


class InferenceServerException(Exception):
    """utils/__init__.py 86-145: msg, status (the HTTP code as a str), debug_details."""

    def __init__(self, msg, status=None, debug_details=None):
        super().__init__(msg)
        self._msg, self._status, self._debug_details = msg, status, debug_details

    def __str__(self):
        msg = self._msg if self._msg is not None else super().__str__()
        return ("[" + self._status + "] " + msg) if self._status is not None else msg

    def message(self):
        return self._msg

    def status(self):
        return self._status

    def debug_details(self):
        return self._debug_details


def raise_error(msg):
    raise InferenceServerException(msg=msg) from None


# ---------------------------------------------------------------------------------------------
# python-rapidjson dumps (compact, ensure_ascii, RapidJSON's double formatting)

def _rj_double(d):
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    sign = "-" if d < 0 else ""
    t = Decimal(repr(abs(d))).normalize().as_tuple()  # shortest round-trip digits
    digits = "".join(map(str, t.digits))
    length, k = len(digits), t.exponent
    kk = length + k  # 10^(kk-1) <= v < 10^kk  (rapidjson internal/dtoa.h Prettify)
    if 0 <= k and kk <= 21:
        out = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        out = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        out = "0." + "0" * -kk + digits
    elif length == 1:
        out = digits + "e" + str(kk - 1)
    else:
        out = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return sign + out


_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
        "\t": "\\t"}


def _rj_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in _ESC:
            out.append(_ESC[ch])
        elif c < 0x20:
            out.append("\\u%04X" % c)
        elif c < 0x80:
            out.append(ch)
        elif c < 0x10000:
            out.append("\\u%04X" % c)
        else:
            c -= 0x10000
            out.append("\\u%04X\\u%04X" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF)))
    out.append('"')
    return "".join(out)


def rj_dumps(v):
    """rapidjson.dumps(v) with default options, as tritonclient calls it (_utils.py 138)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _rj_double(v)
    if isinstance(v, str):
        return _rj_string(v)
    if isinstance(v, dict):
        return "{" + ",".join(_rj_string(k) + ":" + rj_dumps(x) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(rj_dumps(x) for x in v) + "]"
    raise TypeError("not JSON serialisable: %r" % (v,))


# ---------------------------------------------------------------------------------------------
# Tensors

def _flatten(values):
    if _np is not None and isinstance(values, _np.ndarray):
        return [x.item() for x in values.flatten()]
    if isinstance(values, (list, tuple)):
        out = []
        for v in values:
            out.extend(_flatten(v))
        return out
    return [values]


def _as_item(datatype, v):
    """What numpy's val.item() yields for an element of this dtype (_infer_input.py 196)."""
    if datatype in ("FP32", "FP16"):
        f = _FMT[datatype]
        return struct.unpack("<" + f, struct.pack("<" + f, float(v)))[0]
    if datatype == "FP64":
        return float(v)
    if datatype == "BOOL":
        return bool(v)
    return int(v)


def serialize(datatype, flat):
    """Raw bytes of a flat row-major tensor, as set_data_from_numpy(binary_data=True) sends."""
    if datatype == "BYTES":
        parts = []
        for s in flat:
            s = s if isinstance(s, bytes) else str(s).encode("utf-8")
            parts += [struct.pack("<I", len(s)), s]
        return b"".join(parts)
    if datatype == "BF16":
        return b"".join(struct.pack("<f", float(v))[2:4] for v in flat)
    return struct.pack("<%d%s" % (len(flat), _FMT[datatype]), *[_as_item(datatype, v) for v in flat])


def deserialize(datatype, raw):
    """Flat values from raw bytes, as as_numpy decodes binary outputs (_infer_result.py 185-201)."""
    if datatype == "BYTES":
        out, off = [], 0
        while off < len(raw):
            (n,) = struct.unpack_from("<I", raw, off)
            out.append(bytes(raw[off + 4:off + 4 + n]))
            off += 4 + n
        return out
    if datatype == "BF16":
        return [struct.unpack("<f", b"\x00\x00" + bytes(raw[i:i + 2]))[0]
                for i in range(0, len(raw) - 1, 2)]
    if datatype == "BOOL":
        return [b != 0 for b in raw]
    size = struct.calcsize(_FMT[datatype])
    if len(raw) % size:
        raise ValueError("buffer size %d is not a multiple of %d (%s)" % (len(raw), size, datatype))
    return list(struct.unpack("<%d%s" % (len(raw) // size, _FMT[datatype]), raw))


class InferInput:
    """_infer_input.py: InferInput(name, shape, datatype).set_data(values, binary_data)."""

    def __init__(self, name, shape, datatype):
        self._name, self._shape, self._datatype = name, list(shape), datatype
        self._parameters, self._data, self._raw_data = {}, None, None

    def name(self):
        return self._name

    def set_data(self, values, binary_data=True):
        """values: nested lists / flat list / numpy array in row-major order."""
        flat = _flatten(values)
        if binary_data:
            self._data = None
            self._raw_data = serialize(self._datatype, flat)
            self._parameters["binary_data_size"] = len(self._raw_data)
        else:
            if self._datatype == "BF16":
                raise_error("BF16 inputs must be sent as binary data over HTTP. "
                            "Please set binary_data=True")
            self._parameters.pop("binary_data_size", None)
            self._raw_data = None
            if self._datatype == "BYTES":
                self._data = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in flat]
            else:
                self._data = [_as_item(self._datatype, v) for v in flat]
        return self

    set_data_from_numpy = set_data

    def _get_binary_data(self):
        return self._raw_data

    def _get_tensor(self):
        tensor = {"name": self._name, "shape": self._shape, "datatype": self._datatype}
        if self._parameters:
            tensor["parameters"] = self._parameters
        if self._raw_data is None and self._data is not None:
            tensor["data"] = self._data
        return tensor


class InferRequestedOutput:
    """_requested_output.py 51-57, 106-117."""

    def __init__(self, name, binary_data=True, class_count=0):
        self._name = name
        self._parameters = {}
        if class_count != 0:
            self._parameters["classification"] = class_count
        self._parameters["binary_data"] = binary_data

    def name(self):
        return self._name

    def _get_tensor(self):
        tensor = {"name": self._name}
        if self._parameters:
            tensor["parameters"] = self._parameters
        return tensor


def _as_input(x):
    if isinstance(x, InferInput):
        return x
    name, datatype, shape, values, binary = x
    return InferInput(name, shape, datatype).set_data(values, binary_data=binary)


def _as_output(x):
    if isinstance(x, InferRequestedOutput):
        return x
    if isinstance(x, str):
        return InferRequestedOutput(x)
    return InferRequestedOutput(*x)


def get_inference_request(inputs, request_id="", outputs=None, sequence_id=0,
                          sequence_start=False, sequence_end=False, priority=0, timeout=None,
                          parameters=None):
    """_utils.py _get_inference_request 90-151: (body bytes, json length or None)."""
    inputs = [_as_input(i) for i in inputs]
    outputs = [_as_output(o) for o in outputs] if outputs else outputs
    infer_request, params = {}, {}
    if request_id != "":
        infer_request["id"] = request_id
    if sequence_id != 0 and sequence_id != "":
        params["sequence_id"] = sequence_id
        params["sequence_start"] = sequence_start
        params["sequence_end"] = sequence_end
    if priority != 0:
        params["priority"] = priority
    if timeout is not None:
        params["timeout"] = timeout
    infer_request["inputs"] = [i._get_tensor() for i in inputs]
    if outputs:
        infer_request["outputs"] = [o._get_tensor() for o in outputs]
    else:
        params["binary_data_output"] = True
    if parameters:
        for key, value in parameters.items():
            if key in RESERVED_PARAMS or key.startswith(RESERVED_PREFIX):
                raise_error(f'Parameter "{key}" is a reserved parameter and cannot be specified.')
            params[key] = value
    if params:
        infer_request["parameters"] = params
    request_json = rj_dumps(infer_request)
    body = [request_json.encode()]
    for i in inputs:
        if i._get_binary_data() is not None:
            body.append(i._get_binary_data())
    if len(body) == 1:
        return body[0], None
    return b"".join(body), len(request_json)


# ---------------------------------------------------------------------------------------------
# HTTP framing

def build_request(method, request_uri, body=b"", headers=None, host="127.0.0.1", port=8000,
                  user_agent=USER_AGENT):
    """geventhttpclient HTTPClient._build_request + request(): the exact bytes sent."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    fields = {"user-agent": ("User-Agent", user_agent)}  # lower name -> (name, value), ordered
    for name, value in (headers or {}).items():
        fields[name.lower()] = (name, value)
    if "host" not in fields:
        host_port = host
        if ":" in host and host[0] != "[" and host[-1] != "]":
            host_port = "[" + host_port + "]"
        if port not in (80, 443):
            host_port += ":" + str(port)
        fields["host"] = ("Host", host_port)
    if body and "content-length" not in fields:
        fields["content-length"] = ("Content-Length", len(body))
    if not request_uri.startswith(("/", "http")):
        request_uri = "/" + request_uri
    head = method.upper() + " " + request_uri + " HTTP/1.1\r\n"
    for name, value in fields.values():
        head += name + ": " + str(value) + "\r\n"
    head += "\r\n"
    return head.encode() + (body or b"")


class _ConnectionClosed(Exception):
    pass


class Response:
    """One parsed HTTP response: status, headers (case-insensitive get), body bytes."""

    def __init__(self, status, reason, version, headers, body):
        self.status_code, self.reason, self.version = status, reason, version
        self.header_list, self.body = headers, body

    def get(self, name, default=None):
        vals = [v for k, v in self.header_list if k.lower() == name.lower()]
        if not vals:
            return default
        return vals[0] if len(vals) == 1 else vals  # geventhttpclient Headers: a list if repeated

    def should_close(self):
        conn = (self.get("Connection") or "")
        conn = ",".join(conn) if isinstance(conn, list) else conn
        tokens = {t.strip().lower() for t in conn.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


def _read_response(f, method):
    line = f.readline(65537)
    if not line:
        raise _ConnectionClosed("connection closed.")
    if not line.endswith(b"\r\n"):
        raise InferenceServerException("malformed status line %r" % line)
    parts = line[:-2].decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise InferenceServerException("malformed status line %r" % line)
    version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""
    headers = []
    while True:
        h = f.readline(65537)
        if not h:
            raise InferenceServerException("connection closed before end of the headers")
        if h == b"\r\n":
            break
        if not h.endswith(b"\r\n") or b":" not in h:
            raise InferenceServerException("malformed header line %r" % h)
        k, v = h[:-2].decode("latin-1").split(":", 1)
        if k != k.strip() or not k:
            raise InferenceServerException("malformed header name %r" % h)
        headers.append((k, v.strip(" \t")))
    resp = Response(status, reason, version, headers, b"")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return resp
    te = resp.get("Transfer-Encoding")
    if te is not None and "chunked" in str(te).lower():
        chunks = []
        while True:
            size_line = f.readline(65537)
            if not size_line.endswith(b"\r\n"):
                raise InferenceServerException("bad chunk size line %r" % size_line)
            n = int(size_line.split(b";")[0].strip(), 16)
            if n == 0:
                while f.readline(65537) not in (b"\r\n", b""):  # trailers
                    pass
                break
            data = f.read(n)
            if len(data) != n or f.read(2) != b"\r\n":
                raise InferenceServerException("truncated chunk")
            chunks.append(data)
        resp.body = b"".join(chunks)
    elif resp.get("Content-Length") is not None:
        cl = resp.get("Content-Length")
        if isinstance(cl, list) or not str(cl).isdigit():
            raise InferenceServerException("bad Content-Length %r" % (cl,))
        n = int(cl)
        resp.body = f.read(n)
        if len(resp.body) != n:
            raise InferenceServerException("connection closed inside the body")
    else:
        resp.body = f.read()  # delimited by the connection's end
        resp.header_list.append(("X-Tritonwire-Read-Until-Close", "1"))
    return resp


def _get_error(response):
    """_utils.py _get_error 40-64."""
    if response.status_code == 200:
        return None
    body = None
    try:
        body = response.body.decode("utf-8")
        error_response = (json.loads(body) if len(body)
                          else {"error": "client received an empty response from the server."})
        return InferenceServerException(msg=error_response["error"],
                                        status=str(response.status_code))
    except Exception as e:  # noqa: BLE001 - as tritonclient does
        return InferenceServerException(
            msg=f"an exception occurred in the client while decoding the response: {e}\n"
                f"response: {body}", status=str(response.status_code), debug_details=body)


def _raise_if_error(response):
    err = _get_error(response)
    if err is not None:
        raise err


class InferResult:
    """_infer_result.py: splits the response body and decodes outputs like as_numpy."""

    def __init__(self, response):
        header_length = response.get("Inference-Header-Content-Length")
        content = response.body
        encoding = response.get("Content-Encoding")
        if encoding == "gzip":
            content = gzip.decompress(content)
        elif encoding == "deflate":
            content = zlib.decompress(content)
        self._buffer, self._offsets = b"", {}
        if header_length is None:
            self._result = json.loads(content)
        else:
            header_length = int(header_length)
            self._result = json.loads(content[:header_length])
            self._buffer = content[header_length:]
            index = 0
            for output in self._result["outputs"]:
                size = (output.get("parameters") or {}).get("binary_data_size")
                if size is not None:
                    self._offsets[output["name"]] = index
                    index += size
        self.response = response

    def get_response(self):
        return self._result

    def get_output(self, name):
        for output in self._result["outputs"]:
            if output["name"] == name:
                return output
        return None

    def _decode(self, output):
        datatype = output["datatype"]
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if size == 0:
                return []
            if output["name"] not in self._offsets:
                # tritonclient: AttributeError on _output_name_to_buffer_map (no header sent)
                raise InferenceServerException(
                    "output '%s' has binary_data_size but the response has no "
                    "Inference-Header-Content-Length header" % output["name"])
            start = self._offsets[output["name"]]
            raw = self._buffer[start:start + size]
            if len(raw) != size:
                raise InferenceServerException("binary section too short for '%s'" % output["name"])
            return deserialize(datatype, raw)
        data = output["data"]
        if datatype in _FMT:
            return [_as_item(datatype, v) for v in data]
        if datatype == "BF16":
            return [struct.unpack("<f", struct.pack("<f", float(v)))[0] for v in data]
        return list(data)

    def as_list(self, name):
        """(flat values, shape) of an output, or None; values as as_numpy(name).flatten()."""
        output = self.get_output(name) if self._result.get("outputs") is not None else None
        if output is None:
            return None
        flat, shape = self._decode(output), list(output["shape"])
        if math.prod(shape) != len(flat):
            raise ValueError("cannot reshape array of size %d into shape %s" % (len(flat), shape))
        return flat, shape

    def as_numpy(self, name):
        """The numpy array tritonclient's as_numpy returns (needs numpy)."""
        got = self.as_list(name)
        if got is None:
            return None
        flat, shape = got
        dtype = self.get_output(name)["datatype"]
        return _np.array(flat, dtype=_NP[dtype]).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Client

class TritonWireClient:
    """InferenceServerClient(url="host:port") over one keep-alive socket (concurrency=1).

    headers: sent with every request (as if passed as headers= to each call; per-call headers
    come after them). connections_opened counts TCP connections (keep-alive checks)."""

    def __init__(self, host="127.0.0.1", port=8000, headers=None, network_timeout=60.0,
                 connection_timeout=60.0, user_agent=USER_AGENT):
        self.host, self.port = host, port
        self.headers = dict(headers or {})
        self.network_timeout, self.connection_timeout = network_timeout, connection_timeout
        self.user_agent = user_agent
        self._sock = self._file = None
        self.connections_opened = 0
        self.last_request = None
        self.last_response = None

    # -- transport --------------------------------------------------------------------------
    def close(self):
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _connect(self):
        self._sock = socket.create_connection((self.host, self.port), self.connection_timeout)
        self._sock.settimeout(self.network_timeout)
        self._file = self._sock.makefile("rb")
        self.connections_opened += 1

    def request(self, method, path, body=b"", headers=None, query_params=None):
        """Sends one request (path without the leading "/", as tritonclient builds it) and
        returns the Response. Retries like geventhttpclient (2 more attempts)."""
        merged = dict(self.headers)
        merged.update(headers or {})
        uri = "" + "/" + path
        if query_params is not None:
            uri += "?" + "&".join(
                "%s=%s" % (quote_plus(k), quote_plus(str(i)))
                for k, v in query_params.items() for i in (v if isinstance(v, list) else [v]))
        if any(k.lower() == "transfer-encoding" for k in merged):
            raise_error("Unsupported HTTP header: 'Transfer-Encoding' is not supported in the "
                        "Python client library. Use raw HTTP request libraries or the C++ "
                        "client instead for this header.")
        raw = build_request(method, uri, body, merged, self.host, self.port, self.user_agent)
        self.last_request = raw
        attempts_left = 2
        while True:
            if self._sock is None:
                self._connect()
            try:
                self._sock.sendall(raw)
            except OSError as e:
                self.close()
                if e.errno in (errno.ECONNRESET, errno.EPIPE) and attempts_left > 0:
                    attempts_left -= 1
                    continue
                raise
            try:
                resp = _read_response(self._file, method.upper())
            except (_ConnectionClosed, ConnectionResetError):
                self.close()
                if attempts_left > 0:
                    attempts_left -= 1
                    continue
                raise
            except BaseException:
                self.close()
                raise
            if resp.should_close() or resp.get("X-Tritonwire-Read-Until-Close"):
                self.close()
            self.last_response = resp
            return resp

    def _get(self, path, headers=None, query_params=None):
        return self.request("GET", path, b"", headers, query_params)

    def _get_json(self, path, headers=None, query_params=None):
        resp = self._get(path, headers, query_params)
        _raise_if_error(resp)
        return json.loads(resp.body)

    @staticmethod
    def _model_path(name, version, suffix=""):
        if type(version) != str:  # noqa: E721 - as tritonclient checks
            raise_error("model version must be a string")
        path = "v2/models/" + quote(name)
        if version != "":
            path += "/versions/" + version
        return path + suffix

    # -- API ----------------------------------------------------------------------------------
    def is_server_live(self, headers=None, query_params=None):
        return self._get("v2/health/live", headers, query_params).status_code == 200

    def is_server_ready(self, headers=None, query_params=None):
        return self._get("v2/health/ready", headers, query_params).status_code == 200

    def is_model_ready(self, model_name, model_version="", headers=None, query_params=None):
        path = self._model_path(model_name, model_version, "/ready")
        return self._get(path, headers, query_params).status_code == 200

    def get_server_metadata(self, headers=None, query_params=None):
        return self._get_json("v2", headers, query_params)

    def get_model_metadata(self, model_name, model_version="", headers=None, query_params=None):
        return self._get_json(self._model_path(model_name, model_version), headers, query_params)

    def get_inference_statistics(self, model_name="", model_version="", headers=None,
                                 query_params=None):
        if model_name != "":
            path = self._model_path(model_name, model_version, "/stats")
        else:
            path = "v2/models/stats"
        return self._get_json(path, headers, query_params)

    def build_infer(self, model_name, inputs, model_version="", outputs=None, request_id="",
                    sequence_id=0, sequence_start=False, sequence_end=False, priority=0,
                    timeout=None, headers=None, request_compression_algorithm=None,
                    response_compression_algorithm=None, parameters=None):
        """(path, body, per-call headers) of InferenceServerClient.infer (_client.py 1428-1474)."""
        body, json_size = get_inference_request(
            inputs, request_id, outputs, sequence_id, sequence_start, sequence_end, priority,
            timeout, parameters)
        headers = dict(headers) if headers is not None else None  # tritonclient mutates its arg
        if request_compression_algorithm == "gzip":
            headers = {} if headers is None else headers
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body)
        elif request_compression_algorithm == "deflate":
            headers = {} if headers is None else headers
            headers["Content-Encoding"] = "deflate"
            body = zlib.compress(body)
        if response_compression_algorithm == "gzip":
            headers = {} if headers is None else headers
            headers["Accept-Encoding"] = "gzip"
        elif response_compression_algorithm == "deflate":
            headers = {} if headers is None else headers
            headers["Accept-Encoding"] = "deflate"
        if json_size is not None:
            headers = {} if headers is None else headers
            headers["Inference-Header-Content-Length"] = json_size
        return self._model_path(model_name, model_version, "/infer"), body, headers

    def infer(self, model_name, inputs, model_version="", outputs=None, request_id="",
              sequence_id=0, sequence_start=False, sequence_end=False, priority=0, timeout=None,
              headers=None, query_params=None, request_compression_algorithm=None,
              response_compression_algorithm=None, parameters=None):
        """inputs: InferInput or (name, datatype, shape, values, binary); outputs:
        InferRequestedOutput, a name (binary) or (name, binary_data[, class_count])."""
        path, body, headers = self.build_infer(
            model_name, inputs, model_version, outputs, request_id, sequence_id, sequence_start,
            sequence_end, priority, timeout, headers, request_compression_algorithm,
            response_compression_algorithm, parameters)
        resp = self.request("POST", path, body, headers, query_params)
        _raise_if_error(resp)
        return InferResult(resp)


# ---------------------------------------------------------------------------------------------

def _selftest():
    c = TritonWireClient("127.0.0.1", 8000)
    path, body, headers = c.build_infer(
        "mlp16", [("x", "FP32", [1, 2], [1.0, -2.0], True)])
    raw = build_request("POST", "/" + path, body, headers, "127.0.0.1", 8000)
    expected = (
        b"POST /v2/models/mlp16/infer HTTP/1.1\r\n"
        b"User-Agent: python/gevent-http-client-2.3.8\r\n"
        b"Inference-Header-Content-Length: 134\r\n"
        b"Host: 127.0.0.1:8000\r\n"
        b"Content-Length: 142\r\n"
        b"\r\n"
        b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":'
        b'{"binary_data_size":8}}],"parameters":{"binary_data_output":true}}'
        b"\x00\x00\x80\x3f\x00\x00\x00\xc0")
    assert raw == expected, raw
    assert build_request("GET", "/v2/health/live", host="127.0.0.1", port=8000) == (
        b"GET /v2/health/live HTTP/1.1\r\nUser-Agent: python/gevent-http-client-2.3.8\r\n"
        b"Host: 127.0.0.1:8000\r\n\r\n")
    for v, s in [(1.0, "1.0"), (0.5, "0.5"), (1e-7, "1e-7"), (1.5e21, "1.5e21"), (100.0, "100.0"),
                 (-0.0, "-0.0"), (1e21, "1e21"), (123456.789, "123456.789"), (0.001, "0.001")]:
        assert _rj_double(v) == s, (v, _rj_double(v), s)
    print("tritonwire selftest: ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        _selftest()
    else:
        print("usage: tritonwire.py --selftest", file=sys.stderr)
        sys.exit(2)
