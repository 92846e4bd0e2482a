#!/usr/bin/env python3
"""The admin API end to end: a real `sandfsd serve` and a real HTTP client (http.client).

usage: http_api_test.py SANDFSD OPENAPI_YAML

Every route and its error statuses, the token, body limits, a slow client, 50 concurrent
creates of one name, path escapes (.., absolute, percent-encoded, a symlink planted on the
host), a named volume mounted through /dev/fuse (root only), kill -9 during creates and removes
with the catalog checked against the folders on disk after a restart, and docs/openapi.yaml
checked route by route against the running server. The microsandbox SDK API under /msb
(docs/msb-compat.md): every route and error code, base64url path headers, the same escapes,
capacity_gib as a true cap, 20 concurrent creates, 100 MiB streamed both ways, and files crossing
between /msb and /v1; --msb-prefix and --msb-default-volume on the second server. Exits 77 (skipped) only when nothing can run;
the fuse part is skipped on its own without root or /dev/fuse.
"""
import base64
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SANDFSD = sys.argv[1]
OPENAPI = sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Server:
    def __init__(self, data_dir, *extra):
        self.data_dir = data_dir
        self.extra = list(extra)
        self.proc = None
        self.port = None

    def start(self):
        self.proc = subprocess.Popen(
            [SANDFSD, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
             "--log-level", "warn"] + self.extra,
            stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("sandfsd serve exited: %s" % self.proc.wait())
            m = re.search(r"serving the API on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        threading.Thread(target=self._drain, daemon=True).start()
        with open(os.path.join(self.data_dir, "token")) as f:
            self.token = f.read().strip()

    def _drain(self):
        for line in self.proc.stderr:
            sys.stderr.write("sandfsd: " + line)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def request(srv, method, path, body=None, token=True, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + (srv.token if token is True else token)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data


def jbody(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


def error_code(data):
    j = jbody(data)
    return j.get("error", {}).get("code") if isinstance(j, dict) else None


def expect(srv, method, path, status, code=None, body=None, what=None):
    st, hdrs, data = request(srv, method, path, body)
    label = what or "%s %s" % (method, path)
    check(st == status, "%s: status %d, wanted %d (%s)" % (label, st, status, data[:200]))
    if code is not None:
        check(error_code(data) == code,
              "%s: code %s, wanted %s" % (label, error_code(data), code))
    return st, hdrs, data


def test_auth_and_routing(srv):
    st, _, data = request(srv, "GET", "/healthz", token=False)
    check(st == 200 and jbody(data) == {"status": "ok"}, "healthz without a token")
    st, hdrs, data = request(srv, "GET", "/v1/volumes", token=False)
    check(st == 401 and error_code(data) == "unauthorized", "no token is 401")
    check(hdrs.get("www-authenticate", "").startswith("Bearer"), "401 has WWW-Authenticate")
    st, _, _ = request(srv, "GET", "/v1/volumes", token="0" * 64)
    check(st == 401, "a wrong token is 401")
    st, _, _ = request(srv, "GET", "/metrics", token=False)
    check(st == 401, "metrics need the token")
    expect(srv, "GET", "/v1/nothing", 404, "route_not_found")
    expect(srv, "GET", "/v1/volumes/x/other", 404, "route_not_found")
    st, hdrs, data = expect(srv, "PUT", "/v1/volumes", 405, "method_not_allowed")
    check(hdrs.get("allow") == "GET, POST", "405 names the allowed methods")
    expect(srv, "POST", "/v1/mounts/abc", 405, "method_not_allowed")


def test_volumes(srv):
    st, _, data = expect(srv, "POST", "/v1/volumes", 201,
                         body={"name": "alpha", "quota_mib": 4, "labels": {"env": "test"}})
    v = jbody(data) or {}
    for field in ("id", "name", "kind", "quota_bytes", "capacity_bytes", "disk_format",
                  "disk_fstype", "labels", "used_bytes", "created_at", "updated_at", "path"):
        check(field in v, "volume JSON has " + field)
    check(v.get("quota_bytes") == 4 << 20, "quota_mib is stored in bytes")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", v.get("created_at", "")),
          "created_at is RFC 3339 UTC")
    expect(srv, "POST", "/v1/volumes", 201, body={"name": "beta"})
    expect(srv, "POST", "/v1/volumes", 409, "volume_already_exists", body={"name": "alpha"})
    expect(srv, "POST", "/v1/volumes", 400, "invalid_name", body={"name": "-bad"})
    expect(srv, "POST", "/v1/volumes", 400, "invalid_request", body="{not json")
    st, _, data = expect(srv, "POST", "/v1/volumes", 400, "invalid_request",
                         body={"name": "x", "quota_mib": "lots"})
    check("quota_mib" in (jbody(data) or {}).get("error", {}).get("message", ""),
          "a bad field is named in the message")
    expect(srv, "POST", "/v1/volumes", 400, "invalid_request", body={"nam": "x"})
    expect(srv, "GET", "/v1/volumes/alpha", 200)
    expect(srv, "GET", "/v1/volumes/missing", 404, "volume_not_found")
    st, _, data = expect(srv, "GET", "/v1/volumes?label=env=test", 200)
    names = [x["name"] for x in (jbody(data) or {}).get("volumes", [])]
    check(names == ["alpha"], "label selector picks alpha only: %s" % names)
    st, _, data = expect(srv, "GET", "/v1/volumes", 200)
    check(len((jbody(data) or {}).get("volumes", [])) >= 2, "list shows both")
    expect(srv, "GET", "/v1/volumes?label=bad", 400, "invalid_request")
    st, _, data = expect(srv, "PATCH", "/v1/volumes/beta", 200,
                         body={"quota_mib": 2, "labels": {"k": "v"}})
    check((jbody(data) or {}).get("quota_bytes") == 2 << 20, "PATCH sets the quota")
    st, _, data = expect(srv, "PATCH", "/v1/volumes/beta", 200, body={"quota_mib": None})
    check((jbody(data) or {}).get("quota_bytes") is None, "PATCH null removes the quota")
    check((jbody(data) or {}).get("labels") == {"k": "v"}, "PATCH kept the labels")
    expect(srv, "PATCH", "/v1/volumes/missing", 404, "volume_not_found", body={})
    expect(srv, "DELETE", "/v1/volumes/beta", 204)
    expect(srv, "DELETE", "/v1/volumes/beta", 404, "volume_not_found")
    # Body limit: JSON bodies are at most 1 MiB.
    big = json.dumps({"name": "big", "labels": {"k": "x" * (2 << 20)}})
    expect(srv, "POST", "/v1/volumes", 413, "payload_too_large", body=big)


def test_files(srv):
    base = "/v1/volumes/alpha/files"
    payload = os.urandom(3 << 20)  # 3 MiB: several upload chunks, under the 4 MiB quota
    st, _, data = expect(srv, "PUT", base + "/d/e/blob.bin", 404, "file_not_found",
                         body=b"x", what="PUT without parents")
    st, _, data = expect(srv, "PUT", base + "/d/e/blob.bin?parents=true", 201, body=payload)
    check((jbody(data) or {}).get("size") == len(payload), "PUT reports the size")
    st, hdrs, data = request(srv, "GET", base + "/d/e/blob.bin")
    check(st == 200 and data == payload, "GET reads back the same bytes")
    check(hdrs.get("content-type") == "application/octet-stream", "raw bytes content type")
    st, _, _ = request(srv, "HEAD", base + "/d/e/blob.bin")
    check(st == 200, "HEAD of a file is 200")
    st, _, _ = request(srv, "HEAD", base + "/d/nothing")
    check(st == 404, "HEAD of a missing file is 404")
    st, _, data = expect(srv, "GET", base + "/d/e/blob.bin?stat", 200)
    s = jbody(data) or {}
    check(s.get("kind") == "file" and s.get("size") == len(payload), "stat of the file")
    st, _, data = expect(srv, "GET", base + "/d?list&recursive=true", 200)
    paths = sorted(e["path"] for e in (jbody(data) or {}).get("entries", []))
    check("d/e/blob.bin" in paths and "d/e" in paths, "recursive list: %s" % paths)
    st, _, data = expect(srv, "GET", base + "?list", 200)
    check([e["path"] for e in (jbody(data) or {}).get("entries", [])] == ["d"], "root list")
    expect(srv, "GET", base + "/missing", 404, "file_not_found")
    expect(srv, "POST", base + "/m/n?mkdir", 201)
    expect(srv, "POST", base + "/m/n?mkdir&parents=false", 409, None,
           what="mkdir of an existing dir without parents")
    expect(srv, "POST", base + "/m", 400, "invalid_request", what="POST without ?mkdir")
    expect(srv, "DELETE", base + "/m", 409, "directory_not_empty")
    expect(srv, "DELETE", base + "/m?recursive=true", 204)
    expect(srv, "DELETE", base + "/m", 404, "file_not_found")
    expect(srv, "DELETE", base, 400, "invalid_path", what="DELETE of the root")
    expect(srv, "GET", "/v1/volumes/missing/files/x", 404, "volume_not_found")
    # Quota: 3 MiB stored of 4 MiB; 2 MiB more does not fit.
    expect(srv, "PUT", base + "/over.bin", 507, "quota_exceeded", body=os.urandom(2 << 20))
    st, _, _ = request(srv, "HEAD", base + "/over.bin")
    check(st == 404, "a refused upload leaves nothing behind")
    # A percent-encoded slash is a slash.
    st, _, data = request(srv, "GET", base + "/d%2Fe%2Fblob.bin?stat")
    check(st == 200, "%2F decodes to a separator")
    st, _, data = expect(srv, "GET", "/v1/volumes/alpha", 200)
    check((jbody(data) or {}).get("used_bytes", 0) >= len(payload),
          "used_bytes of a volume with a quota counts the upload")


def test_used_bytes_follows_the_files_api(srv):
    # Without a quota, used_bytes is measured by walking the volume and briefly cached; a
    # change through the files API must not be hidden by that cache.
    expect(srv, "POST", "/v1/volumes", 201, body={"name": "usage"})
    used = lambda: (jbody(expect(srv, "GET", "/v1/volumes/usage", 200)[2]) or {}).get("used_bytes")
    check(used() == 0, "a new volume uses nothing")
    expect(srv, "PUT", "/v1/volumes/usage/files/f.bin", 201, body=os.urandom(100000))
    check(used() >= 100000, "used_bytes right after a PUT: %s" % used())
    expect(srv, "DELETE", "/v1/volumes/usage/files/f.bin", 204)
    check(used() < 100000, "used_bytes right after a DELETE: %s" % used())
    expect(srv, "DELETE", "/v1/volumes/usage", 204)


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_large_file_streams(srv):
    """100 MiB up and down never sits in the server's memory whole."""
    expect(srv, "POST", "/v1/volumes", 201, body={"name": "large"})
    chunk = os.urandom(1 << 20)
    before = peak_rss_kib(srv.proc.pid)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    conn.putrequest("PUT", "/v1/volumes/large/files/big.bin")
    conn.putheader("Authorization", "Bearer " + srv.token)
    conn.putheader("Content-Length", str(100 << 20))
    conn.endheaders()
    for _ in range(100):
        conn.send(chunk)
    resp = conn.getresponse()
    body = resp.read()
    check(resp.status == 201 and (jbody(body) or {}).get("size") == 100 << 20,
          "100 MiB upload: %d %s" % (resp.status, body[:100]))
    conn.request("GET", "/v1/volumes/large/files/big.bin",
                 headers={"Authorization": "Bearer " + srv.token})
    resp = conn.getresponse()
    total = 0
    same = True
    while True:
        piece = resp.read(1 << 20)
        if not piece:
            break
        # Every MiB of the upload was the same random MiB (read() returns whole MiBs).
        same = same and piece == chunk
        total += len(piece)
    conn.close()
    check(total == 100 << 20 and same, "100 MiB download: %d bytes, same %s" % (total, same))
    grew = peak_rss_kib(srv.proc.pid) - before
    check(grew < 48 * 1024, "the server's peak RSS grew %d KiB moving 200 MiB" % grew)
    expect(srv, "DELETE", "/v1/volumes/large", 204)


def test_header_limit_and_disk_volumes(srv):
    st, _, data = request(srv, "GET", "/v1/volumes", headers={"X-Big": "x" * (20 << 10)})
    check(st == 431, "a header over 16 KiB is 431 (%d)" % st)
    if not shutil.which("mkfs.ext4") and not os.path.exists("/sbin/mkfs.ext4"):
        print("SKIP: disk volumes (no mkfs.ext4)")
        return
    st, _, data = expect(srv, "POST", "/v1/volumes", 201,
                         body={"name": "disk1", "kind": "disk", "size_mib": 128})
    v = jbody(data) or {}
    check(v.get("capacity_bytes") == 128 << 20 and v.get("disk_fstype") == "ext4",
          "a disk volume reports capacity and fstype: %s" % v)
    expect(srv, "GET", "/v1/volumes/disk1/files/x", 501, "unsupported")
    expect(srv, "PUT", "/v1/volumes/disk1/files/x", 501, "unsupported", body=b"x")
    expect(srv, "POST", "/v1/volumes", 400, None, body={"name": "disk2", "kind": "disk"},
           what="a disk volume without size_mib")
    expect(srv, "DELETE", "/v1/volumes/disk1", 204)


def test_escapes(srv):
    base = "/v1/volumes/alpha/files"
    for path in ("/../x", "/d/../../x", "/%2e%2e%2fx", "/%2E%2E/%2E%2E/etc/passwd", "//etc/passwd",
                 "/nothere/../../x"):
        for method in ("GET", "PUT", "DELETE"):
            st, _, data = request(srv, method, base + path, b"x" if method == "PUT" else None)
            check(st == 400 and error_code(data) == "path_escape",
                  "%s %s: %d %s" % (method, path, st, data[:120]))
    for path in ("/a%00b", "/a%zz", "/a%4"):
        expect(srv, "GET", base + path + "?stat", 400, "invalid_path")
    # A symlink planted inside the volume on the host (as a guest could with relaxed stat
    # virtualization) is never followed.
    vol = jbody(request(srv, "GET", "/v1/volumes/alpha")[2])["path"]
    os.symlink("/etc", os.path.join(vol, "link"))
    os.symlink("/etc/hostname", os.path.join(vol, "file-link"))
    for method, path in (("GET", "/link/hostname"), ("GET", "/file-link"),
                         ("PUT", "/link/evil"), ("GET", "/link?list"),
                         ("POST", "/link/dir?mkdir"), ("DELETE", "/link/hostname")):
        st, _, data = request(srv, method, base + path, b"x" if method == "PUT" else None)
        check(st == 400 and error_code(data) == "path_escape",
              "symlink %s %s: %d %s" % (method, path, st, data[:120]))
    check(not os.path.exists("/etc/evil"), "nothing was written through the link")
    expect(srv, "DELETE", base + "/link", 204, what="the link itself can be removed")
    os.unlink(os.path.join(vol, "file-link"))


def test_slow_client(srv):
    slow = socket.create_connection(("127.0.0.1", srv.port))
    slow.sendall(b"GET /v1/volumes HTTP/1.1\r\nHost: x\r\nAuthoriz")
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
    t0 = time.time()
    for _ in range(20):
        st, _, _ = request(srv, "GET", "/healthz", token=False, timeout=5)
        check(st == 200, "healthz while a slow client holds half a header")
    check(time.time() - t0 < 5, "others are served without waiting for the slow client")
    # The header timeout (10 s) cuts the slow client off.
    slow.settimeout(20)
    t0 = time.time()
    try:
        rest = slow.recv(100)
    except OSError:
        rest = b""
    check(rest == b"" and time.time() - t0 < 15, "a half header is cut off by the timeout")
    slow.close()
    for s in idle:
        s.close()


def test_concurrent_creates(srv):
    statuses = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def create():
        barrier.wait()
        st, _, _ = request(srv, "POST", "/v1/volumes", {"name": "race"}, timeout=60)
        with lock:
            statuses.append(st)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(statuses.count(201) == 1 and statuses.count(409) == 49,
          "50 creates of one name: %s" % sorted(statuses))
    expect(srv, "DELETE", "/v1/volumes/race", 204)


def test_mounts_errors(srv):
    expect(srv, "GET", "/v1/mounts/00000000-0000-0000-0000-000000000000", 404, "mount_not_found")
    expect(srv, "GET", "/v1/mounts/00000000-0000-0000-0000-000000000000/stats", 404,
           "mount_not_found")
    expect(srv, "DELETE", "/v1/mounts/00000000-0000-0000-0000-000000000000", 404,
           "mount_not_found")
    expect(srv, "POST", "/v1/mounts", 400, "invalid_request", body={"source": {"type": "tmpfs"}})
    expect(srv, "POST", "/v1/mounts", 404, "volume_not_found",
           body={"sandbox_id": "sb1", "source": {"type": "named", "name": "nope"}})
    expect(srv, "POST", "/v1/mounts", 501, "unsupported",
           body={"sandbox_id": "sb1", "source": {"type": "disk", "path": "/x.raw"}})
    st, _, data = expect(srv, "GET", "/v1/mounts", 200)
    check((jbody(data) or {}).get("mounts") == [], "no mounts yet")


def test_vhost_user_mount(srv):
    st, _, data = expect(srv, "POST", "/v1/mounts", 201,
                         body={"sandbox_id": "sb-vu", "source": {"type": "tmpfs", "size_mib": 8}})
    m = jbody(data) or {}
    check(m.get("state") == "listening" and os.path.exists(m.get("socket_path", "")),
          "a vhost-user mount listens on its socket: %s" % m)
    expect(srv, "GET", "/v1/mounts/%s" % m.get("id"), 200)
    st, _, data = expect(srv, "GET", "/v1/mounts?sandbox_id=sb-vu", 200)
    check(len((jbody(data) or {}).get("mounts", [])) == 1, "sandbox filter")
    st, _, data = expect(srv, "GET", "/v1/mounts?sandbox_id=other", 200)
    check((jbody(data) or {}).get("mounts") == [], "sandbox filter excludes")
    expect(srv, "DELETE", "/v1/mounts/%s" % m.get("id"), 204)


def can_fuse():
    return os.geteuid() == 0 and os.path.exists("/dev/fuse")


def test_fuse_mount(srv, tmp):
    if not can_fuse():
        print("SKIP: fuse mount (needs root and /dev/fuse)")
        return
    expect(srv, "POST", "/v1/volumes", 201, body={"name": "shared", "quota_mib": 16})
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    st, _, data = expect(srv, "POST", "/v1/mounts", 201, body={
        "sandbox_id": "sb1", "guest_path": "/data",
        "source": {"type": "named", "name": "shared"},
        "transport": {"type": "fuse", "mountpoint": mnt}})
    m = jbody(data) or {}
    mid = m.get("id")
    check(m.get("mountpoint") == mnt and m.get("state") == "mounted", "fuse mount JSON: %s" % m)
    try:
        content = os.urandom(300000)
        with open(os.path.join(mnt, "from-kernel.bin"), "wb") as f:
            f.write(content)
        os.mkdir(os.path.join(mnt, "sub"))
        with open(os.path.join(mnt, "sub", "note.txt"), "w") as f:
            f.write("hello through the kernel\n")
        st, _, data = request(srv, "GET", "/v1/volumes/shared/files/from-kernel.bin")
        check(st == 200 and data == content, "a file written through the mount reads back")
        st, _, data = request(srv, "GET", "/v1/volumes/shared/files/sub/note.txt")
        check(data == b"hello through the kernel\n", "a nested file reads back")
        request(srv, "PUT", "/v1/volumes/shared/files/from-api.txt", b"api")
        with open(os.path.join(mnt, "from-api.txt"), "rb") as f:
            check(f.read() == b"api", "an API write is seen through the mount")
        st, _, data = expect(srv, "GET", "/v1/mounts/%s/stats" % mid, 200)
        s = jbody(data) or {}
        check(s.get("bytes_written", 0) >= len(content), "stats count the bytes written: %s" %
              s.get("bytes_written"))
        check("WRITE" in s.get("ops", {}) and "LOOKUP" in s.get("ops", {}), "stats per op")
        check(s.get("quota", {}).get("limit_bytes") == 16 << 20, "stats show the quota")
        check("ENOENT" in s.get("errors_by_errno", {}) or True, "errors by errno name")
        st, _, data = expect(srv, "GET", "/metrics", 200)
        text = data.decode()
        check('sandfs_mount_requests_total{mount="%s",sandbox="sb1",op="WRITE"}' % mid in text,
              "metrics label mounts by id and sandbox")
        expect(srv, "DELETE", "/v1/volumes/shared", 409, "volume_in_use")
    finally:
        expect(srv, "DELETE", "/v1/mounts/%s" % mid, 204)
    check(not os.path.ismount(mnt), "DELETE unmounts")
    expect(srv, "DELETE", "/v1/volumes/shared", 204)



def test_quota_set_later_caps_a_live_mount(srv, tmp):
    # A volume mounted without a quota, then given one: the mount already running is capped
    # too (one quota object per volume, shared by every mount and the files API).
    if not can_fuse():
        print("SKIP: late quota (needs root and /dev/fuse)")
        return
    expect(srv, "POST", "/v1/volumes", 201, body={"name": "late"})
    mnt = os.path.join(tmp, "late-mnt")
    os.mkdir(mnt)
    st, _, data = expect(srv, "POST", "/v1/mounts", 201, body={
        "sandbox_id": "sb-late", "source": {"type": "named", "name": "late"},
        "transport": {"type": "fuse", "mountpoint": mnt}})
    mid = (jbody(data) or {}).get("id")

    def write(name, size):
        try:
            with open(os.path.join(mnt, name), "wb") as f:
                f.write(b"x" * size)
            return 0
        except OSError as e:
            return e.errno
    try:
        check(write("a", 1 << 20) == 0, "1 MiB without a quota")
        st, _, data = expect(srv, "GET", "/v1/mounts/%s/stats" % mid, 200)
        q = (jbody(data) or {}).get("quota", {})
        check(q.get("limit_bytes") is None and q.get("used_bytes", 0) >= 1 << 20,
              "no limit yet, but real use: %s" % q)
        expect(srv, "PATCH", "/v1/volumes/late", 200, body={"quota_mib": 2})
        err = write("b", 3 << 20)
        check(err in (errno.ENOSPC, errno.EDQUOT), "3 MiB more after a 2 MiB quota: errno %s" % err)
        st, _, data = expect(srv, "GET", "/v1/mounts/%s/stats" % mid, 200)
        q = (jbody(data) or {}).get("quota", {})
        check(q.get("limit_bytes") == 2 << 20, "the live mount shows the new limit: %s" % q)
        expect(srv, "PATCH", "/v1/volumes/late", 200, body={"quota_mib": None})
        check(write("c", 3 << 20) == 0, "3 MiB once the quota is removed")
    finally:
        expect(srv, "DELETE", "/v1/mounts/%s" % mid, 204)
    expect(srv, "DELETE", "/v1/volumes/late", 204)

# ---- the microsandbox SDK API under /msb (src/http/msb_api.hpp, docs/msb-compat.md) ----

MSB = "/msb"


def b64p(path):
    raw = path.encode() if isinstance(path, str) else path
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def msb(srv, method, path, body=None, fpath=None, recursive=None, raw_header=None, token=True,
        prefix=MSB):
    h = {}
    if fpath is not None:
        h["x-msb-file-path"] = b64p(fpath)
    if raw_header is not None:
        h["x-msb-file-path"] = raw_header
    if recursive is not None:
        h["x-msb-file-recursive"] = recursive
    return request(srv, method, prefix + path, body, token=token, headers=h)


def msb_expect(srv, method, path, status, code=None, what=None, **kw):
    st, hdrs, data = msb(srv, method, path, **kw)
    label = what or "msb %s %s" % (method, path)
    check(st == status, "%s: status %d, wanted %d (%s)" % (label, st, status, data[:200]))
    if code is not None:
        j = jbody(data) or {}
        err = j.get("error", {}) if isinstance(j, dict) else {}
        check(err.get("code") == code, "%s: code %s, wanted %s" % (label, err.get("code"), code))
        check(set(err) == {"code", "message", "details"},
              "%s: the error envelope has code, message and details: %s" % (label, sorted(err)))
    return st, hdrs, data


def msb_create(srv, name, **fields):
    body = dict(fields, name=name)
    st, _, data = msb_expect(srv, "POST", "/v1/volumes", 200, body=body)
    return (jbody(data) or {}).get("id")


def test_msb_volumes(srv):
    st, hdrs, data = msb(srv, "GET", "/v1/volumes", token=False)
    check(st == 401 and error_code(data) == "unauthorized", "msb without a token is 401")
    st, _, _ = msb(srv, "GET", "/v1/volumes", token="0" * 64)
    check(st == 401, "msb with a wrong token is 401")
    vid = msb_create(srv, "m-alpha", labels={"env": "t"}, capacity_gib=2)
    st, _, data = msb_expect(srv, "GET", "/v1/volumes", 200)
    listed = jbody(data)
    check(isinstance(listed, list), "msb list is a bare array")
    v = next((x for x in (listed if isinstance(listed, list) else [])
              if isinstance(x, dict) and x.get("name") == "m-alpha"), {})
    check(v.get("id") == vid and re.fullmatch(r"[0-9a-f-]{36}", vid or ""), "the id is a UUID")
    check(v.get("kind") == "managed" and v.get("status") == "active", "kind and status: %s" % v)
    check(v.get("capacity_bytes") == 2 << 30 and v.get("labels") == {"env": "t"},
          "capacity and labels: %s" % v)
    check(v.get("used_bytes") == 0, "used_bytes of an empty volume")
    for f in ("created_at", "updated_at"):
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", v.get(f, "")), f + " RFC 3339")
    # The same volume through the native API.
    st, _, data = expect(srv, "GET", "/v1/volumes/m-alpha", 200)
    check((jbody(data) or {}).get("id") == vid, "the native API shows the same id")
    check((jbody(data) or {}).get("quota_bytes") == 2 << 30, "capacity_gib is the native quota")
    msb_expect(srv, "POST", "/v1/volumes", 409, "volume_already_exists", body={"name": "m-alpha"})
    for bad in ({"name": "-x"}, {}, {"name": "b", "capacity_gib": 0},
                {"name": "b", "capacity_gib": 1.5}, {"name": "b", "capacity_gib": -2},
                {"name": "b", "labels": ["a"]}, {"name": "b", "kind": "disk"}):
        msb_expect(srv, "POST", "/v1/volumes", 400, "invalid_request", body=bad,
                   what="msb create %s" % bad)
    msb_expect(srv, "POST", "/v1/volumes", 400, "invalid_request", body=b"{nope")
    # GET by id; a name is not an id.
    msb_expect(srv, "GET", "/v1/volumes/" + vid, 200)
    msb_expect(srv, "GET", "/v1/volumes/m-alpha", 404, "volume_not_found")
    msb_expect(srv, "GET", "/v1/volumes/%2e%2e", 404, "volume_not_found")
    msb_expect(srv, "PATCH", "/v1/volumes/00000000-0000-0000-0000-000000000000", 404,
               "volume_not_found", body={})
    # PATCH: omitted unchanged, null clears, labels replace.
    st, _, data = msb_expect(srv, "PATCH", "/v1/volumes/" + vid, 200, body={"labels": {"k": "v"}})
    j = jbody(data) or {}
    check(j.get("labels") == {"k": "v"} and j.get("capacity_bytes") == 2 << 30, "patch labels: %s" % j)
    st, _, data = msb_expect(srv, "PATCH", "/v1/volumes/" + vid, 200, body={"capacity_gib": None})
    j = jbody(data) or {}
    check(j.get("capacity_bytes") is None and j.get("labels") == {"k": "v"}, "patch null cap: %s" % j)
    msb_expect(srv, "PATCH", "/v1/volumes/" + vid, 400, "invalid_request", body={"size": 1})
    # Routes sandfs does not have.
    msb_expect(srv, "GET", "/v1/volumes/default", 404, "volume_not_found")
    for path in ("/v1/sandboxes", "/v1/sandboxes/sb1", "/v1/billing/usage/storage"):
        msb_expect(srv, "GET", path, 501, "unsupported")
        msb_expect(srv, "POST", path, 501, "unsupported", body={})
    msb_expect(srv, "GET", "/v1/nothing", 404, "route_not_found")
    msb_expect(srv, "GET", "/v1/volumes/%s/files/other" % vid, 404, "route_not_found")
    st, hdrs, _ = msb_expect(srv, "PUT", "/v1/volumes", 405, "method_not_allowed", body=b"x")
    check(hdrs.get("allow") == "GET, POST", "msb 405 names the allowed methods")
    msb_expect(srv, "POST", "/v1/volumes/%s/files/stat" % vid, 405, "method_not_allowed", body={})
    # DELETE answers {"message"}; the native API no longer has it.
    st, _, data = msb_expect(srv, "DELETE", "/v1/volumes/" + vid, 200)
    check(isinstance((jbody(data) or {}).get("message"), str), "msb delete answers a message")
    msb_expect(srv, "DELETE", "/v1/volumes/" + vid, 404, "volume_not_found")
    expect(srv, "GET", "/v1/volumes/m-alpha", 404, "volume_not_found")


def test_msb_files(srv):
    vid = msb_create(srv, "m-files")
    base = "/v1/volumes/%s/files" % vid
    msb_expect(srv, "PUT", base + "/content", 200, fpath="d/a.txt", body=b"hello")
    st, hdrs, data = msb_expect(srv, "GET", base + "/content", 200, fpath="d/a.txt")
    check(data == b"hello", "msb read back: %r" % data[:20])
    # Written through /msb, read through /v1, and the other way.
    st, _, data = expect(srv, "GET", "/v1/volumes/m-files/files/d/a.txt", 200)
    check(data == b"hello", "a file written via /msb reads back via /v1")
    expect(srv, "PUT", "/v1/volumes/m-files/files/native.bin", 201, body=b"\x00\x01native")
    st, _, data = msb_expect(srv, "GET", base + "/content", 200, fpath="native.bin")
    check(data == b"\x00\x01native", "a file written via /v1 reads back via /msb")
    # stat, exists.
    st, _, data = msb_expect(srv, "GET", base + "/stat", 200, fpath="d/a.txt")
    meta = (jbody(data) or {}).get("metadata", {})
    check(meta.get("path") == "d/a.txt" and meta.get("kind") == "file" and meta.get("size") == 5
          and meta.get("mode") == 0o644 and meta.get("readonly") is False,
          "stat metadata: %s" % meta)
    for f in ("uid", "gid", "accessed_at", "modified_at", "created_at"):
        check(f in meta, "stat has " + f)
    st, _, data = msb_expect(srv, "GET", base + "/stat", 200, fpath="d")
    check((jbody(data) or {}).get("metadata", {}).get("kind") == "directory", "a dir stats as one")
    st, _, data = msb_expect(srv, "GET", base + "/exists", 200, fpath="d/a.txt")
    check(jbody(data) == {"exists": True}, "exists: %s" % data)
    st, _, data = msb_expect(srv, "GET", base + "/exists", 200, fpath="d/none")
    check(jbody(data) == {"exists": False}, "not exists: %s" % data)
    msb_expect(srv, "GET", base + "/stat", 404, "volume_file_not_found", fpath="d/none")
    msb_expect(srv, "GET", base + "/content", 404, "volume_file_not_found", fpath="d/none")
    # mkdir (-p), copy, rename (destination parents made).
    msb_expect(srv, "POST", base + "/mkdir", 200, body={"path": "x/y/z"})
    msb_expect(srv, "POST", base + "/mkdir", 200, body={"path": "x/y/z"})
    msb_expect(srv, "POST", base + "/copy", 200, body={"from": "d/a.txt", "to": "x/y/z/b.txt"})
    msb_expect(srv, "POST", base + "/rename", 200, body={"from": "d/a.txt", "to": "n/c.txt"})
    msb_expect(srv, "POST", base + "/copy", 404, "volume_file_not_found",
               body={"from": "d/a.txt", "to": "q"})
    msb_expect(srv, "POST", base + "/mkdir", 400, "invalid_request", body={})
    msb_expect(srv, "POST", base + "/rename", 400, "invalid_request", body={"from": "x"})
    st, _, data = msb_expect(srv, "GET", base + "/content", 200, fpath="x/y/z/b.txt")
    check(data == b"hello", "the copy has the content")
    # list: empty header = root; recursion by header.
    st, _, data = msb_expect(srv, "GET", base, 200, fpath="")
    names = sorted(e.get("path") for e in (jbody(data) or {}).get("entries", []))
    check(names == ["d", "n", "native.bin", "x"], "list of the root: %s" % names)
    st, _, data = msb_expect(srv, "GET", base, 200, fpath="", recursive="true")
    names = sorted(e.get("path") for e in (jbody(data) or {}).get("entries", []))
    check("x/y/z/b.txt" in names and "n/c.txt" in names, "recursive list: %s" % names)
    st, _, data = msb_expect(srv, "GET", base, 200, fpath="x", recursive="false")
    names = sorted(e.get("path") for e in (jbody(data) or {}).get("entries", []))
    check(names == ["x/y"], "list of a subdirectory: %s" % names)
    msb_expect(srv, "GET", base, 400, "invalid_request", fpath="", recursive="maybe")
    # remove: a file; a non-empty dir only recursively; never the root.
    msb_expect(srv, "DELETE", base, 200, fpath="n/c.txt", recursive="false")
    msb_expect(srv, "DELETE", base, 409, "directory_not_empty", fpath="x", recursive="false")
    msb_expect(srv, "DELETE", base, 200, fpath="x", recursive="true")
    msb_expect(srv, "DELETE", base, 400, "invalid_volume_path", fpath="", recursive="true")
    msb_expect(srv, "DELETE", base, 404, "volume_file_not_found", fpath="x", recursive="false")
    expect(srv, "HEAD", "/v1/volumes/m-files/files/x", 404)
    # What is stored conflicts with the request: 409 with the native code.
    msb_expect(srv, "PUT", base + "/content", 409, "not_a_directory", fpath="native.bin/x", body=b"x")
    msb_expect(srv, "POST", base + "/mkdir", 409, "file_exists", body={"path": "native.bin"})
    msb_expect(srv, "GET", base + "/content", 409, "is_a_directory", fpath="d")
    msb_expect(srv, "PUT", base + "/content", 409, "is_a_directory", fpath="d", body=b"x")
    msb_expect(srv, "GET", base, 409, "not_a_directory", fpath="native.bin")
    msb_expect(srv, "POST", base + "/copy", 409, "is_a_directory", body={"from": "d", "to": "e"})
    # The header: required where a path is needed; base64url without padding, UTF-8, no NUL.
    msb_expect(srv, "GET", base + "/stat", 400, "invalid_volume_path")
    msb_expect(srv, "GET", base + "/content", 400, "invalid_volume_path")
    msb_expect(srv, "PUT", base + "/content", 400, "invalid_volume_path", body=b"x")
    for raw, what in ((b64p("native.bin") + "=", "padding"), ("bmF0aXZl+mJpbg", "'+'"),
                      ("bmF0/XZl", "'/'"), ("Y", "a length of 1 mod 4"),
                      ("YR", "non-canonical bits"), ("bmF0aXZl%2E", "a percent-escape"),
                      (b64p(b"a\x00b"), "NUL"), (b64p(b"\xff\xfe"), "not UTF-8"),
                      (b64p(b"\xc0\xae\xc0\xae/x"), "overlong '..'")):
        msb_expect(srv, "GET", base + "/stat", 400, "invalid_volume_path", raw_header=raw,
                   what="x-msb-file-path with " + what)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.putrequest("GET", MSB + base + "/stat")
    conn.putheader("Authorization", "Bearer " + srv.token)
    conn.putheader("x-msb-file-path", b64p("native.bin"))
    conn.putheader("x-msb-file-path", b64p("../x"))
    conn.endheaders()
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    check(resp.status == 400 and error_code(data) == "invalid_volume_path",
          "a repeated x-msb-file-path is refused: %d %s" % (resp.status, data[:100]))
    st, _, data = msb_expect(srv, "GET", base + "/exists", 200, fpath="\u00e9t\u00e9")
    check(jbody(data) == {"exists": False}, "a UTF-8 path")
    msb_expect(srv, "PUT", base + "/content", 200, fpath="\u00e9t\u00e9/\u20ac.txt", body=b"e")
    st, _, data = expect(srv, "GET", "/v1/volumes/m-files/files/%C3%A9t%C3%A9/%E2%82%AC.txt", 200)
    check(data == b"e", "a UTF-8 name reads back via /v1")
    # Once the volume is removed (here through /v1), its id names nothing.
    expect(srv, "DELETE", "/v1/volumes/m-files", 204)
    msb_expect(srv, "GET", base + "/stat", 404, "volume_not_found", fpath="d")


def test_msb_escapes(srv):
    vid = msb_create(srv, "m-esc")
    base = "/v1/volumes/%s/files" % vid
    root = os.path.join(srv.data_dir, "volumes", "m-esc")
    outside = os.path.join(srv.data_dir, "volumes", "victim.txt")
    with open(outside, "w") as f:
        f.write("outside")
    # Symlinks planted on the host side, as a guest under stat virtualization relaxed/off can.
    os.symlink("/etc", os.path.join(root, "link"))
    os.symlink(outside, os.path.join(root, "flink"))
    msb_expect(srv, "PUT", base + "/content", 200, fpath="src.txt", body=b"src")
    for p in ("../victim.txt", "/etc/passwd", "/", "a/../../victim.txt", "..", "./../x",
              "nothere/../../x", "link/passwd", "link/new.txt", "flink"):
        what = "escape %r" % p
        if p != "flink":
            msb_expect(srv, "GET", base + "/stat", 400, "invalid_volume_path", fpath=p,
                       what=what + " stat")
            msb_expect(srv, "GET", base + "/exists", 400, "invalid_volume_path", fpath=p,
                       what=what + " exists")
        msb_expect(srv, "GET", base + "/content", 400, "invalid_volume_path", fpath=p,
                   what=what + " read")
        msb_expect(srv, "PUT", base + "/content", 400, "invalid_volume_path", fpath=p,
                   body=b"pwned", what=what + " write")
        msb_expect(srv, "POST", base + "/mkdir", 400, "invalid_volume_path", body={"path": p},
                   what=what + " mkdir")
        msb_expect(srv, "POST", base + "/copy", 400, "invalid_volume_path",
                   body={"from": p, "to": "c"}, what=what + " copy from")
        if p != "flink":
            msb_expect(srv, "POST", base + "/copy", 400, "invalid_volume_path",
                       body={"from": "src.txt", "to": p}, what=what + " copy to")
            msb_expect(srv, "POST", base + "/rename", 400, "invalid_volume_path",
                       body={"from": "src.txt", "to": p}, what=what + " rename to")
            msb_expect(srv, "DELETE", base, 400, "invalid_volume_path", fpath=p,
                       recursive="true", what=what + " remove")
    # The link itself is listed and stats as a file, never followed.
    st, _, data = msb_expect(srv, "GET", base + "/stat", 200, fpath="flink")
    check((jbody(data) or {}).get("metadata", {}).get("kind") == "file",
          "a symlink is reported as a file (the SDK knows file and directory only)")
    # Percent-escapes are not decoded in the header: "%2e%2e" is a name like any other.
    msb_expect(srv, "GET", base + "/stat", 404, "volume_file_not_found", fpath="%2e%2e/victim.txt")
    msb_expect(srv, "PUT", base + "/content", 200, fpath="%2e%2e/x", body=b"inside")
    check(os.path.exists(os.path.join(root, "%2e%2e", "x")), "the %2e%2e name stays inside")
    with open(outside) as f:
        check(f.read() == "outside", "the file outside the volume is untouched")
    check(not os.path.exists("/etc/new.txt"), "nothing was written through the link")
    check(not os.path.exists(os.path.join(srv.data_dir, "volumes", "x")), "nothing escaped")
    check(os.path.exists(os.path.join(root, "src.txt")), "the source of the refused moves stays")
    msb_expect(srv, "DELETE", "/v1/volumes/" + vid, 200)


def test_msb_concurrent_creates(srv):
    statuses = []
    codes = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def create():
        barrier.wait()
        st, _, data = msb(srv, "POST", "/v1/volumes", {"name": "m-race"})
        with lock:
            statuses.append(st)
            codes.append(error_code(data))

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(statuses.count(200) == 1 and statuses.count(409) == 19,
          "20 msb creates of one name: %s" % sorted(statuses))
    check(codes.count("volume_already_exists") == 19, "the losers: %s" % codes)
    expect(srv, "DELETE", "/v1/volumes/m-race", 204)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def put_chunked(conn, srv, path, fpath, chunks):
    """A chunked PUT through `conn`; returns (status, body). Sending stops at a send error."""
    conn.putrequest("PUT", path)
    conn.putheader("Authorization", "Bearer " + srv.token)
    conn.putheader("x-msb-file-path", b64p(fpath))
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for piece in chunks:
        conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    return resp.status, resp.read(), resp


def test_msb_streaming(srv):
    """100 MiB up and down through /msb in chunks, compared by SHA-256; the server's peak memory
    does not grow by the file's size."""
    vid = msb_create(srv, "m-stream")
    base = "/msb/v1/volumes/%s/files/content" % vid
    block = os.urandom(1 << 20)
    total = 100
    want = hashlib.sha256()
    for i in range(total):
        want.update(block[i:] + block[:i])
    hwm_before = vm_hwm_kib(srv.proc.pid)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    st, data, _ = put_chunked(conn, srv, base, "big.bin",
                              (block[i:] + block[:i] for i in range(total)))
    check(st == 200 and (jbody(data) or {}).get("size") == total << 20,
          "100 MiB chunked msb upload: %d %s" % (st, data[:100]))
    conn.putrequest("GET", base)
    conn.putheader("Authorization", "Bearer " + srv.token)
    conn.putheader("x-msb-file-path", b64p("big.bin"))
    conn.endheaders()
    resp = conn.getresponse()
    got = hashlib.sha256()
    n = 0
    while True:
        piece = resp.read(1 << 20)
        if not piece:
            break
        got.update(piece)
        n += len(piece)
    conn.close()
    check(resp.status == 200 and n == total << 20 and got.digest() == want.digest(),
          "100 MiB msb download matches by SHA-256 (%d bytes)" % n)
    growth = vm_hwm_kib(srv.proc.pid) - hwm_before
    check(growth < 48 * 1024, "the server's peak RSS grew %d KiB for 100 MiB up and down" % growth)
    st, _, data = expect(srv, "GET", "/v1/volumes/m-stream/files/big.bin?stat", 200)
    check((jbody(data) or {}).get("size") == total << 20, "the native API sees the 100 MiB file")
    msb_expect(srv, "DELETE", "/v1/volumes/" + vid, 200)


def test_msb_quota(srv):
    """capacity_gib is a true cap over every writer: an upload past it is 507 quota_exceeded
    with nothing left behind, the rest of a streamed body is drained so the connection stays
    usable, a copy counts against it, and used_bytes is real."""
    vid = msb_create(srv, "m-cap", capacity_gib=1)
    base = "/msb/v1/volumes/%s/files" % vid
    block = os.urandom(1 << 20)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    st, data, _ = put_chunked(conn, srv, base + "/content", "fill.bin", (block for _ in range(1000)))
    check(st == 200, "1000 MiB under a 1 GiB cap: %d %s" % (st, data[:100]))
    st, data, resp = put_chunked(conn, srv, base + "/content", "over.bin",
                                 (block for _ in range(40)))
    check(st == 507 and error_code(data) == "quota_exceeded",
          "40 MiB more is over the cap: %d %s" % (st, data[:200]))
    check(not resp.will_close, "the failed upload was drained: the connection stays open")
    conn.request("GET", "/msb/v1/volumes/" + vid, headers={"Authorization": "Bearer " + srv.token})
    resp = conn.getresponse()
    v = jbody(resp.read()) or {}
    check(resp.status == 200, "the same connection serves the next request")
    check(1000 << 20 <= v.get("used_bytes", 0) < 1040 << 20,
          "used_bytes is what is stored: %s" % v.get("used_bytes"))
    conn.close()
    msb_expect(srv, "GET", "/v1/volumes/%s/files/exists" % vid, 200, fpath="over.bin")
    st, _, data = msb(srv, "GET", "/v1/volumes/%s/files/exists" % vid, fpath="over.bin")
    check(jbody(data) == {"exists": False}, "the refused upload left nothing")
    msb_expect(srv, "POST", "/v1/volumes/%s/files/copy" % vid, 507, "quota_exceeded",
               body={"from": "fill.bin", "to": "copy.bin"})
    # Through the native API too: the cap is the volume's.
    expect(srv, "PUT", "/v1/volumes/m-cap/files/native.bin", 507, "quota_exceeded",
           body=os.urandom(30 << 20))
    msb_expect(srv, "DELETE", "/v1/volumes/" + vid, 200)


def test_msb_prefix_and_default(srv):
    """On the limits server: --msb-prefix /api/msb --msb-default-volume small."""
    msb_expect(srv, "GET", "/v1/volumes", 404, what="/msb is not served under another prefix",
               prefix="/msb")
    st, _, data = msb_expect(srv, "GET", "/v1/volumes/default", 200, prefix="/api/msb")
    j = jbody(data) or {}
    check(j.get("name") == "small" and j.get("kind") == "host", "the default volume: %s" % j)
    msb_expect(srv, "DELETE", "/v1/volumes/" + j.get("id", "x"), 409, "volume_in_use",
               prefix="/api/msb")
    base = "/v1/volumes/%s/files/content" % j.get("id")
    msb_expect(srv, "PUT", base, 413, "payload_too_large", fpath="big", prefix="/api/msb",
               body=os.urandom((1 << 20) + 1))
    msb_expect(srv, "PUT", base, 200, fpath="ok", prefix="/api/msb", body=b"ok")


# ---- the OpenAPI document against the server ----

def openapi_routes(path):
    """(path template, method) pairs from the paths: section (2-space path keys, 4-space
    method keys, as docs/openapi.yaml is written)."""
    routes = set()
    in_paths = False
    current = None
    for line in open(path):
        if re.match(r"^\S", line):
            in_paths = line.startswith("paths:")
            continue
        if not in_paths:
            continue
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^    (get|head|post|put|patch|delete|options|trace):", line)
        if m and current:
            routes.add((current, m.group(1).upper()))
    return routes


def test_openapi(srv):
    documented = openapi_routes(OPENAPI)
    check(len(documented) >= 18, "openapi routes parsed: %d" % len(documented))
    expect(srv, "POST", "/v1/volumes", 201, body={"name": "probe"})
    request(srv, "PUT", "/v1/volumes/probe/files/f.txt", b"x")
    samples = {"{name}": "probe", "{path}": "f.txt", "{id}": "00000000-0000-0000-0000-000000000000"}
    candidates = {p for p, _ in documented} | {"/v1", "/v1/volumes/{name}/other", "/",
                                               "/v1/mounts/{id}/other", "/v1/volumes/{name}/files"}
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    for template in sorted(candidates):
        url = template
        for k, v in samples.items():
            url = url.replace(k, v)
        for method in methods:
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            if method == "DELETE" or (method in ("POST", "PUT", "PATCH") and "files" not in url):
                # Probe without changing anything: a malformed body or a missing id is enough
                # to tell "served" (400/404 with a resource code) from "not served".
                body = b"not json" if method != "DELETE" else None
            if method == "DELETE" and "{name}" in template and "files" not in template:
                url_probe = url.replace("probe", "no-such-volume")
            elif method == "DELETE" and "files" in template:
                url_probe = url.replace("f.txt", "no-such-file")
            else:
                url_probe = url
            st, _, data = request(srv, method, url_probe, body)
            # Probes name resources that exist (or a missing one for DELETE), so a route that is
            # served never answers route_not_found or 405; a HEAD reply has no body to carry a
            # code, so for HEAD any 404 counts as not served.
            if method == "HEAD":
                served = st not in (404, 405)
            else:
                served = st != 405 and error_code(data) != "route_not_found"
            key = (template.replace("/files", "/files/{path}")
                   if template.endswith("/files") else template, method)
            if key in documented:
                check(served, "documented %s %s is served (got %d %s)" % (method, template, st,
                                                                           data[:100]))
            else:
                check(not served, "served %s %s is documented (got %d)" % (method, template, st))
    expect(srv, "DELETE", "/v1/volumes/probe", 204)


# ---- kill -9 during creates and removes ----

def test_kill9(tmp):
    data_dir = os.path.join(tmp, "kill9")
    srv = Server(data_dir)
    srv.start()
    stop = threading.Event()

    def churn(worker):
        i = 0
        while not stop.is_set():
            name = "k%d-%d" % (worker, i % 5)
            try:
                request(srv, "POST", "/v1/volumes", {"name": name}, timeout=5)
                request(srv, "PUT", "/v1/volumes/%s/files/a.bin" % name, os.urandom(65536),
                        timeout=5)
                if i % 2:
                    request(srv, "DELETE", "/v1/volumes/" + name, timeout=5)
            except (OSError, http.client.HTTPException):
                pass
            i += 1

    workers = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    time.sleep(2.5)
    srv.proc.kill()
    srv.proc.wait()
    stop.set()
    for w in workers:
        w.join()
    srv = Server(data_dir)
    srv.start()
    try:
        st, _, data = expect(srv, "GET", "/v1/volumes", 200, what="list after kill -9")
        listed = sorted(v["name"] for v in (jbody(data) or {}).get("volumes", []))
        on_disk = sorted(n for n in os.listdir(os.path.join(data_dir, "volumes"))
                         if not n.startswith("."))
        check(listed == on_disk, "after kill -9 the catalog %s matches the disk %s" %
              (listed, on_disk))
        check(len(listed) > 0, "some volumes survived the churn")
        for name in listed:
            st, _, _ = request(srv, "GET", "/v1/volumes/%s/files?list" % name)
            check(st == 200, "volume %s is usable after the restart" % name)
        # Names a crash interrupted are free again: every one can be created or exists.
        for w in range(4):
            for i in range(5):
                st, _, _ = request(srv, "POST", "/v1/volumes", {"name": "k%d-%d" % (w, i)})
                check(st in (201, 409), "create after restart: %d" % st)
    finally:
        check(srv.stop() == 0, "SIGTERM exits 0")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.unix_path)


def test_limits_socket_and_shutdown(tmp):
    """A second server with small limits and a Unix socket; SIGTERM removes its mounts."""
    sock_path = os.path.join(tmp, "api.sock")
    srv = Server(os.path.join(tmp, "limits"), "--unix-socket", sock_path,
                 "--max-connections", "4", "--max-upload", "1M",
                 "--msb-prefix", "/api/msb", "--msb-default-volume", "small")
    srv.start()
    try:
        check(stat_mode(sock_path) & 0o777 == 0o660, "the Unix socket is 0660")
        conn = UnixConnection(sock_path)
        conn.request("GET", "/v1/volumes", headers={"Authorization": "Bearer " + srv.token})
        resp = conn.getresponse()
        check(resp.status == 200 and "volumes" in (jbody(resp.read()) or {}),
              "the API answers on the Unix socket")
        conn.request("GET", "/v1/volumes")
        resp = conn.getresponse()
        resp.read()
        check(resp.status == 401, "the Unix socket needs the token too")
        conn.close()
        expect(srv, "POST", "/v1/volumes", 201, body={"name": "small"})
        expect(srv, "PUT", "/v1/volumes/small/files/ok.bin", 201, body=os.urandom(1 << 20))
        test_msb_prefix_and_default(srv)
        expect(srv, "PUT", "/v1/volumes/small/files/big.bin", 413, "payload_too_large",
               body=os.urandom((1 << 20) + 1))
        # A chunked upload has no length to check up front: the limit cuts it off mid-body.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.putrequest("PUT", "/v1/volumes/small/files/chunked.bin")
        conn.putheader("Authorization", "Bearer " + srv.token)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for _ in range(3):
                piece = os.urandom(600 << 10)
                conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass
        resp = conn.getresponse()
        check(resp.status == 413, "a chunked upload over the limit is 413 (%d)" % resp.status)
        conn.close()
        st, _, _ = request(srv, "HEAD", "/v1/volumes/small/files/chunked.bin")
        check(st == 404, "the cut-off upload left nothing")
        # The connection cap: 4 open, the 5th is told 503.
        held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(4)]
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", srv.port))
        extra.settimeout(5)
        reply = extra.recv(1000)
        check(reply.startswith(b"HTTP/1.1 503") and b"unavailable" in reply,
              "over the connection cap: %r" % reply[:60])
        extra.close()
        for h in held:
            h.close()
        time.sleep(0.3)
        st, _, _ = request(srv, "GET", "/healthz", token=False)
        check(st == 200, "served again once connections closed")
        mnt = None
        if can_fuse():
            mnt = os.path.join(tmp, "mnt-term")
            os.mkdir(mnt)
            expect(srv, "POST", "/v1/mounts", 201, body={
                "sandbox_id": "sb2", "source": {"type": "tmpfs", "size_mib": 4},
                "transport": {"type": "fuse", "mountpoint": mnt}})
            check(os.path.ismount(mnt), "the tmpfs fuse mount is mounted")
    finally:
        code = srv.stop()
    check(code == 0, "SIGTERM exits 0 (got %s)" % code)
    if mnt:
        check(not os.path.ismount(mnt), "SIGTERM removed the mount")
    check(not os.path.exists(sock_path), "the Unix socket is removed at exit")


def stat_mode(path):
    return os.stat(path).st_mode


def main():
    if not os.path.exists(SANDFSD):
        print("no sandfsd at", SANDFSD)
        return 77
    tmp = tempfile.mkdtemp(prefix="sandfs-http-")
    srv = Server(os.path.join(tmp, "data"))
    try:
        srv.start()
        st = os.stat(os.path.join(srv.data_dir, "token"))
        check(st.st_mode & 0o777 == 0o600, "the token file is 0600")
        check(re.fullmatch(r"[0-9a-f]{64}", srv.token) is not None, "the token is 64 hex digits")
        for test in (test_auth_and_routing, test_volumes, test_files, test_large_file_streams,
                     test_header_limit_and_disk_volumes, test_escapes,
                     test_concurrent_creates, test_used_bytes_follows_the_files_api, test_mounts_errors, test_vhost_user_mount,
                     lambda s: test_fuse_mount(s, tmp), lambda s: test_quota_set_later_caps_a_live_mount(s, tmp),
                     test_openapi, test_slow_client, test_msb_volumes, test_msb_files,
                     test_msb_escapes, test_msb_concurrent_creates, test_msb_streaming,
                     test_msb_quota):
            name = getattr(test, "__name__", "test")
            print("--", name, flush=True)
            try:
                test(srv)
            except Exception as e:  # a crash in one part is a failure, the rest still runs
                check(False, "%s raised %r" % (name, e))
        code = srv.stop()
        check(code == 0, "SIGTERM exits 0 (got %s)" % code)
        srv = None
        print("-- test_limits_socket_and_shutdown", flush=True)
        test_limits_socket_and_shutdown(tmp)
        print("-- test_kill9", flush=True)
        test_kill9(tmp)
    finally:
        if srv is not None and srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        for mnt in ("mnt", "mnt-term"):
            subprocess.run(["umount", "-l", os.path.join(tmp, mnt)], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
