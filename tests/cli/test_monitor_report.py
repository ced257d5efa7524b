"""dlsys monitor --report: the HTML report opened in real headless Chromium (Debian package
`chromium`). It must render without a console message, without any network request, show every
section with its SVG charts, keep hostile log strings as text, and screenshot as a non-blank page.

How a request is caught: Chromium writes a net log (--log-net-log) of every URL request it
starts; requests made on behalf of a page carry the page's origin as their initiator ("null" for
a file: page), Chromium's own background requests (component updates, time sync) carry "not an
origin". Any request with an initiator is a failure. The proxy is a closed local port, so nothing
ever leaves the machine. A request the page's Content-Security-Policy blocks never reaches the
net log, but Chromium reports the violation on the console, which must stay empty. The first two
tests prove both detectors on pages that do make requests."""
import html.parser
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import zlib

from clitest import DLSYS, EXIT_OK, TempDirTest, run

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_TIMEOUT_S = 90
SCRIPT_KEY = "<script>alert(1)</script>"
IMG_KEY = "\"><img src=x onerror=alert(2)>"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def monitor_test_binary():
    """The GoogleTest binary that writes the sample report (ReportTest.WritesSampleForBrowser)."""
    path = os.environ.get("DLSYS_MONITOR_TEST") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(DLSYS))), "tests", "monitor_test")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build the monitor_test target (or set "
                           "DLSYS_MONITOR_TEST)")
    return path


class Rendered:
    """One headless Chromium run over a local file: exit code, console messages, the URL requests
    made on behalf of the page (from the net log), and the DOM or the screenshot."""

    def __init__(self, page, workdir, mode, window="1280,2000"):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"{CHROMIUM} is missing: install the Debian package 'chromium' "
                                 "(scripts/install-deps.sh)")
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
        self.net_log = os.path.join(workdir, f"net-{mode}.json")
        self.screenshot = os.path.join(workdir, "screenshot.png")
        # A port that refuses connections: bound, never listening, held until Chromium is done.
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        try:
            args = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
                    f"--user-data-dir={profile}", "--no-first-run", "--hide-scrollbars",
                    "--enable-logging=stderr", "--v=0",
                    f"--proxy-server=127.0.0.1:{closed.getsockname()[1]}",
                    "--proxy-bypass-list=<-loopback>", f"--log-net-log={self.net_log}",
                    f"--window-size={window}"]
            if mode == "dom":
                args.append("--dump-dom")
            else:
                args.append(f"--screenshot={self.screenshot}")
            args.append("file://" + os.path.abspath(page))
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, errors="replace", cwd=workdir,
                                    start_new_session=True)
            try:
                self.dom, self.stderr = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                # Chromium hung: end it and its helpers (its own process group, led by its PID).
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise AssertionError(f"chromium did not finish within {CHROMIUM_TIMEOUT_S} s")
            self.returncode = proc.returncode
        finally:
            closed.close()
            shutil.rmtree(profile, ignore_errors=True)
        self.console = [line for line in self.stderr.splitlines() if ":INFO:CONSOLE" in line]
        self.page_requests = self._page_requests()

    def _page_requests(self):
        with open(self.net_log) as f:
            log = json.load(f)
        names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
        begin = log["constants"]["logEventPhase"]["PHASE_BEGIN"]
        out = []
        for e in log["events"]:
            if names.get(e["type"]) != "URL_REQUEST_START_JOB" or e.get("phase") != begin:
                continue
            params = e.get("params", {})
            if params.get("initiator") != "not an origin":
                out.append((params.get("initiator"), params.get("url")))
        return out


class DomFacts(html.parser.HTMLParser):
    """Tags, attributes and text of a DOM, as a browser's parser sees them."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags = {}
        self.attrs = []
        self.text = []
        self.svg_titles = 0
        self._stack = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag == "title" and "svg" in self._stack:
            self.svg_titles += 1
        if tag not in ("meta", "br", "line", "rect", "circle", "path", "polyline"):
            self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self._stack:
            while self._stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)


def colours(png_path):
    """(width, height, {(r, g, b): pixels}) of an 8-bit RGB or RGBA PNG, decoded with zlib."""
    with open(png_path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    width, height, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    counts = {}
    for y in range(height):
        at = y * (stride + 1)
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (left + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp):
            px = bytes(line[x:x + 3])
            counts[px] = counts.get(px, 0) + 1
        prev = line
    return width, height, counts


class ChromiumDetectors(TempDirTest):
    """The checks below can fail: pages that do fetch are caught."""

    def write(self, name, text):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_a_page_that_makes_requests_is_caught_in_the_net_log(self):
        page = self.write("fetching.html", (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>"
            "<link rel='stylesheet' href='https://style.example/x.css'>"
            "<style>body{background:url(http://bg.example/b.png)}</style></head><body>"
            "<p>fetching</p><img src='http://203.0.113.7/a.png'>"
            "<svg><image href='http://svg.example/i.png' width='9' height='9'/></svg>"
            "</body></html>"))
        r = Rendered(page, self.dir, "dom")
        self.assertEqual(r.returncode, 0, r.stderr)
        urls = {url for _, url in r.page_requests}
        for url in ("https://style.example/x.css", "http://bg.example/b.png",
                    "http://203.0.113.7/a.png", "http://svg.example/i.png"):
            self.assertIn(url, urls)
        self.assertTrue(all(initiator == "null" for initiator, _ in r.page_requests),
                        r.page_requests)
        # A page without requests, in the same browser: none, though Chromium itself fetched.
        quiet = Rendered(self.write("quiet.html", "<!DOCTYPE html><title>q</title><p>q"),
                         self.dir, "dom")
        self.assertEqual(quiet.page_requests, [])

    def test_a_fetch_the_policy_blocks_and_a_script_are_caught_on_the_console(self):
        page = self.write("blocked.html", (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv="
            f"'Content-Security-Policy' content=\"{CSP}\"><title>t</title></head><body>"
            "<img src='http://203.0.113.7/a.png'></body></html>"))
        r = Rendered(page, self.dir, "dom")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.page_requests, [], "the policy stops it before the network")
        self.assertTrue(any("Content Security Policy" in line and "203.0.113.7" in line
                            for line in r.console), r.stderr)
        page = self.write("script.html", "<!DOCTYPE html><title>s</title>"
                                         "<script>console.error('boom')</script>")
        r = Rendered(page, self.dir, "dom")
        self.assertTrue(any('"boom"' in line for line in r.console), r.stderr)


class ReportInChromium(TempDirTest):
    """The sample report of ReportTest.WritesSampleForBrowser: every section, hostile keys."""

    def setUp(self):
        super().setUp()
        self.page = self.path("report.html")
        r = subprocess.run([monitor_test_binary(),
                            "--gtest_filter=ReportTest.WritesSampleForBrowser"],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, DLSYS_REPORT_SAMPLE=self.page,
                                    DLSYS_TEST_TMP=self.dir))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("[  PASSED  ] 1 test", r.stdout)

    def check_quiet(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.console, [], "console messages")
        self.assertEqual(r.page_requests, [], "requests made by the page")

    def test_renders_every_section_without_console_messages_or_requests(self):
        r = Rendered(self.page, self.dir, "dom")
        self.check_quiet(r)
        dom = DomFacts(r.dom)
        for tag in ("script", "img", "iframe", "object", "embed", "link", "image", "use",
                    "foreignobject"):
            self.assertNotIn(tag, dom.tags, tag)
        for tag, name, value in dom.attrs:
            self.assertFalse(name.startswith("on"), (tag, name, value))
            self.assertNotIn(name, ("src", "srcset", "xlink:href", "action", "data"), (tag, name))
            if name == "href":
                self.assertTrue(value.startswith("#"), (tag, value))
        ids = {v for _, k, v in dom.attrs if k == "id"}
        for section in ("canary", "alerts", "summary", "charts", "drift"):
            self.assertIn(section, ids)
        charts = sum(1 for t, k, v in dom.attrs if t == "svg" and k == "class" and v == "chart")
        self.assertEqual(charts, 14, "2 overview + 3 x 3 groups + 3 drift")
        self.assertGreaterEqual(dom.svg_titles, 14)
        self.assertGreater(dom.tags.get("polyline", 0), 20)
        self.assertGreater(dom.tags.get("rect", 0), 30)
        self.assertGreaterEqual(dom.tags.get("th", 0), 13)
        metas = [(k, v) for t, k, v in dom.attrs if t == "meta"]
        self.assertIn(("content", CSP), metas)
        text = "".join(dom.text)
        self.assertIn(SCRIPT_KEY, text)
        self.assertIn(IMG_KEY, text)
        for words in ("Canary verdict", "The canary is worse than stable", "Summary per group",
                      "Drift: baseline against current", "p99_ms > 25", "time (UTC)",
                      "latency (ms)", "requests / s", "5xx rate (%)", "share of sample (%)"):
            self.assertIn(words, text)

    def test_screenshot_is_a_rendered_page(self):
        r = Rendered(self.page, self.dir, "png")
        self.check_quiet(r)
        self.assertGreater(os.path.getsize(r.screenshot), 50_000)
        width, height, counts = colours(r.screenshot)
        self.assertEqual((width, height), (1280, 2000))
        self.assertGreater(len(counts), 200, "text and lines are anti-aliased: many colours")
        background = max(counts.values())
        self.assertLess(background, 0.9 * width * height, "more than a blank page")
        # The verdict's red (#cf222e) fills the badges and the card edges.
        self.assertGreater(counts.get(bytes((0xcf, 0x22, 0x2e)), 0), 500)
        # Chart lines: pixels close to the p50 blue (#0072b2).
        blue = sum(n for (red, green, b), n in counts.items()
                   if red + abs(green - 0x72) + abs(b - 0xb2) < 60)
        self.assertGreater(blue, 300)

    def test_narrow_screen_renders_quietly(self):
        r = Rendered(self.page, self.dir, "png", window="400,1600")
        self.check_quiet(r)
        width, _, counts = colours(r.screenshot)
        self.assertEqual(width, 400)
        self.assertGreater(len(counts), 100)


def write_log(path, minutes=30, seed=11):
    """A log of two versions (1.0.0 stable, 1.1.0 canary failing more), one request every
    ~2 s each, and a hostile model name."""
    import random
    rng = random.Random(seed)
    t0 = 1_796_083_200_000_000  # 2026-12-01T00:00:00Z
    lines = []
    for version, err, base in (("1.0.0", 0.002, 4.0), ("1.1.0", 0.05, 6.0)):
        t = t0
        while t < t0 + minutes * 60_000_000:
            secs, frac = divmod(t, 1_000_000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac
            lines.append({"@timestamp": stamp, "log.level": "INFO", "event": "serve.request",
                          "status": 503 if rng.random() < err else 200,
                          "latency_ms": round(rng.lognormvariate(0, 0.4) * base, 3),
                          "model": "mlp16", "model_version": version})
            t += rng.randint(1_000_000, 3_000_000)
    lines.append({"@timestamp": "2026-12-01T00:10:00Z", "status": 200, "latency_ms": 1,
                  "model": SCRIPT_KEY, "model_version": IMG_KEY})
    lines.sort(key=lambda r: r["@timestamp"])
    with open(path, "w") as f:
        for r in lines:
            f.write(json.dumps(r) + "\n")


class MonitorReportCli(TempDirTest):
    """The real `dlsys monitor LOG --report FILE.html`."""

    def test_monitor_writes_a_report_that_renders_quietly(self):
        log = self.path("serve.log")
        write_log(log)
        out = self.path("out.html")
        r = run("monitor", log, "--compare", "model_version=1.0.0,1.1.0", "--alert",
                "error_rate > 0.01", "--report", out)
        self.assertIn(r.returncode, (EXIT_OK, 7), r.stderr)
        self.assertTrue(os.path.isfile(out), r.stderr)
        rendered = Rendered(out, self.dir, "dom")
        self.assertEqual(rendered.returncode, 0, rendered.stderr)
        self.assertEqual(rendered.console, [])
        self.assertEqual(rendered.page_requests, [])
        dom = DomFacts(rendered.dom)
        self.assertNotIn("script", dom.tags)
        self.assertNotIn("img", dom.tags)
        text = "".join(dom.text)
        self.assertIn(SCRIPT_KEY, text)
        self.assertIn("Canary verdict", text)
        self.assertIn("error_rate > 0.01", text)
        ids = {v for _, k, v in dom.attrs if k == "id"}
        for section in ("canary", "alerts", "summary", "charts"):
            self.assertIn(section, ids)
        self.assertGreaterEqual(sum(1 for t, k, v in dom.attrs
                                    if t == "svg" and k == "class" and v == "chart"), 3)
        shot = Rendered(out, self.dir, "png")
        self.assertEqual(shot.returncode, 0, shot.stderr)
        self.assertEqual(shot.console, [])
        self.assertGreater(len(colours(shot.screenshot)[2]), 100)
        # A second run replaces its own report; a directory in the way is refused.
        os.mkdir(self.path("dir.html"))
        r = run("monitor", log, "--report", self.path("dir.html"))
        self.assertNotEqual(r.returncode, EXIT_OK)
        self.assertTrue(os.path.isdir(self.path("dir.html")))


if __name__ == "__main__":
    unittest.main()
