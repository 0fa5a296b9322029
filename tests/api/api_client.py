"""What the API tests share: an HTTP client over a Unix socket, a validator that checks every
response against Firecracker's OpenAPI description (the contract), a kvmlet process that is
always cleaned up, and the checks a test collects before it reports.

Stdlib plus python3-yaml and python3-jsonschema (tools/setup installs both).
"""

import contextlib
import ctypes
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
import time
import traceback

import jsonschema
import yaml

# Firecracker's default http_api_max_payload_size, which kvmlet keeps.
MAX_PAYLOAD = 51200
NOT_AFTER_START = "The requested operation is not supported after starting the microVM."
NOT_BEFORE_START = "The requested operation is not supported before starting the microVM."


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket: the Host header says localhost, as curl's does."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Response:
    def __init__(self, method, path, status, headers, body):
        self.method, self.path, self.status = method, path, status
        self.headers = headers  # lower-cased names
        self.body = body  # bytes

    def json(self):
        return json.loads(self.body)

    def fault(self):
        try:
            return self.json().get("fault_message")
        except (ValueError, AttributeError):
            return None

    def __str__(self):
        text = self.body.decode(errors="replace")
        return f"{self.method} {self.path} -> {self.status} {text[:300]!r}"


def request(sock_path, method, path, body=None, raw=None, timeout=30, headers=None):
    """One request on a connection of its own. body: a JSON value; raw: bytes sent as they are."""
    conn = UnixHTTPConnection(sock_path, timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"Accept": "application/json"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
        except (BrokenPipeError, ConnectionResetError):
            # The server answered before it read the whole body (a body over the limit) and closed
            # its end: its answer is still queued on our socket, as curl would read it.
            if conn.sock is None:
                raise
            r = http.client.HTTPResponse(conn.sock, method=method)
            r.begin()
        payload = r.read()
        return Response(method, path, r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
    finally:
        conn.close()


class Contract:
    """Firecracker's OpenAPI 2.0 file as JSON Schema: each path's operations, their responses."""

    def __init__(self, yaml_path):
        with open(yaml_path) as f:
            self.spec = yaml.safe_load(f)
        self.definitions = self.spec["definitions"]
        self.templates = []  # (regex, template)
        for template in self.spec["paths"]:
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$"
            self.templates.append((re.compile(pattern), template))

    def schema(self, swagger_schema):
        # Swagger 2.0 schemas are JSON Schema draft 4 plus keywords a validator ignores
        # (readOnly, example, format names it does not know).
        return {"definitions": self.definitions, **swagger_schema}

    def definition(self, name):
        return self.schema({"$ref": f"#/definitions/{name}"})

    def operation(self, method, path):
        for pattern, template in self.templates:
            if pattern.match(path):
                return template, self.spec["paths"][template].get(method.lower())
        return None, None

    def request_schema(self, method, path):
        _, op = self.operation(method, path)
        if op is None:
            return None
        for p in op.get("parameters", []):
            if p.get("in") == "body":
                return self.schema(p["schema"])
        return None

    def problems(self, response, expect_status=None):
        """Everything wrong with `response` by the contract; [] if nothing is."""
        out = []
        r = response
        template, op = self.operation(r.method, r.path.split("?")[0])
        if expect_status is not None and r.status != expect_status:
            out.append(f"status {r.status}, expected {expect_status}")
        if op is None:
            # Not in the contract (unknown path or method): Firecracker's answer is a 400 fault.
            if r.status != 400:
                out.append(f"{r.method} {r.path} is not in the contract: expected 400, got {r.status}")
            out += self._fault_problems(r)
            return out
        responses = op["responses"]
        listed = r.status in responses or str(r.status) in responses
        # Firecracker answers every error 400, under `default` where the file lists no 400
        # (PUT /entropy); and 413 for an MMDS body over the limit (issue 15).
        by_default = "default" in responses and (r.status == 400 or (r.status == 413 and template == "/mmds"))
        if not listed and not by_default:
            out.append(f"status {r.status} is not listed for {r.method.upper()} {template} "
                       f"(listed: {sorted(map(str, responses))})")
        if 200 <= r.status < 300:
            if r.method in ("PUT", "PATCH") and r.status != 204:
                out.append(f"success of {r.method} must be 204 exactly, not {r.status}")
            if r.status == 204:
                if r.body:
                    out.append(f"204 with a body ({len(r.body)} bytes)")
                if "content-type" in r.headers:
                    out.append(f"204 with Content-Type {r.headers['content-type']!r}")
            else:
                out += self._json_problems(r, responses.get(r.status) or responses.get(str(r.status)))
        else:
            out += self._fault_problems(r)
        return out

    def _json_problems(self, r, declared):
        out = []
        if r.status != 200:
            out.append(f"GET success must be 200, not {r.status}")
        if not r.headers.get("content-type", "").startswith("application/json"):
            out.append(f"200 without Content-Type application/json ({r.headers.get('content-type')!r})")
        try:
            value = r.json()
        except ValueError as e:
            return out + [f"200 body is not JSON: {e}"]
        if declared and "schema" in declared:
            out += self.schema_problems(value, self.schema(declared["schema"]))
        return out

    def _fault_problems(self, r):
        out = []
        if not r.headers.get("content-type", "").startswith("application/json"):
            out.append(f"error without Content-Type application/json ({r.headers.get('content-type')!r})")
        try:
            value = r.json()
        except ValueError:
            return out + [f"error body is not JSON: {r.body[:200]!r}"]
        if not isinstance(value, dict) or not isinstance(value.get("fault_message"), str):
            out.append(f"error body has no fault_message string: {value!r}")
        else:
            out += self.schema_problems(value, self.definition("Error"))
        return out

    @staticmethod
    def schema_problems(value, schema):
        validator = jsonschema.Draft4Validator(schema)
        return [f"schema: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(value)]


class Checks:
    """The test's findings: each check prints a line; the test fails if any check failed."""

    def __init__(self, contract=None):
        self.contract = contract
        self.failures = []
        self.passed = 0

    def ok(self, what):
        self.passed += 1
        print(f"ok: {what}")

    def fail(self, what):
        self.failures.append(what)
        print(f"FAIL: {what}")

    def check(self, condition, what, detail=""):
        if condition:
            self.ok(what)
        else:
            self.fail(f"{what}{': ' + detail if detail else ''}")
        return condition

    def call(self, sock, method, path, body=None, raw=None, status=None, fault=None, what=None, **kw):
        """Sends one request and checks its response against the contract, the expected status and,
        for an error, that fault_message contains `fault` (a string) or matches it (a regex)."""
        what = what or f"{method} {path}"
        # PATCH /machine-config is partial, though the contract gives it MachineConfiguration's
        # required fields: its bodies are not checked against the schema.
        partial = (method, path) == ("PATCH", "/machine-config")
        if body is not None and raw is None and status == 204 and self.contract is not None and not partial:
            schema = self.contract.request_schema(method, path)
            if schema is not None:
                bad = Contract.schema_problems(body, schema)
                if bad:
                    self.fail(f"{what}: the test's own valid body breaks the contract: {bad}")
        try:
            r = request(sock, method, path, body=body, raw=raw, **kw)
        except (OSError, http.client.HTTPException) as e:
            self.fail(f"{what}: no response ({type(e).__name__}: {e})")
            return None
        problems = self.contract.problems(r, status) if self.contract else []
        if fault is not None and r.status >= 400:
            message = r.fault() or ""
            matched = fault.search(message) if isinstance(fault, re.Pattern) else fault in message
            if not matched:
                problems.append(f"fault_message {message!r} does not say {getattr(fault, 'pattern', fault)!r}")
        if problems:
            self.fail(f"{what}: {r}: " + "; ".join(problems))
        else:
            self.ok(f"{what} -> {r.status}" + (f" {r.fault()!r}" if r.status >= 400 else ""))
        return r

    def finish(self):
        print(f"{self.passed} checks passed, {len(self.failures)} failed")
        if self.failures:
            print("failures:")
            for f in self.failures:
                print(f"  - {f}")
            return 1
        return 0


def minimal_image_dir():
    """The directory of guest-images/build's minimal image (vmlinux, initrd.cpio), or None when
    it is not built (tools/test builds it)."""
    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    out = subprocess.run([os.path.join(root, "guest-images", "build"), "--print", "minimal"],
                         capture_output=True, text=True, check=False)
    path = out.stdout.strip()
    if out.returncode != 0 or not os.path.isfile(os.path.join(path, "vmlinux")):
        return None
    return path


def require_kvm():
    """No skips: a test that cannot reach /dev/kvm fails (CTest label kvm says it needs it)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise SystemExit(f"FAIL: /dev/kvm is not usable ({e}); the API tests need it")
    os.close(fd)


def _die_with_parent():
    # Runs in the child before exec: SIGKILL when the test dies, even by SIGKILL (a CTest timeout),
    # which gives the test no chance to clean up. Kept across `ip netns exec`'s exec.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Kvmlet:
    """One kvmlet process, started by the test and ended by PID on every exit path."""

    def __init__(self, argv, workdir, name="kvmlet", stdin_pipe=True, env=None):
        self.name = name
        self.stdout_path = os.path.join(workdir, f"{name}.stdout")
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self.argv = argv
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            # stdin: a pipe the test holds, so a guest reading COM1 waits rather than sees EOF.
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                                         stdout=out, stderr=err, env=env, preexec_fn=_die_with_parent)
        print(f"started {name} (pid {self.proc.pid}): {' '.join(argv)}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """`with Kvmlet(...) as vm:` shows its output's tail when the body fails, and always ends
        it by PID."""
        if exc_type is not None:
            self.report()
        self.stop()
        return False

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def write_stdin(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait(self, timeout):
        """The exit status, or None if it still runs after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum):
        if self.running():
            os.kill(self.proc.pid, signum)

    def stop(self):
        """SIGKILL by PID if it still runs, then reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def wait_for_socket(self, sock, timeout=30, path="/"):
        """Polls GET `path` until the socket answers (as the Go SDK polls GET /machine-config);
        the response, or None if kvmlet exited or the time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return None
            try:
                return request(sock, "GET", path, timeout=5)
            except (OSError, http.client.HTTPException):
                time.sleep(0.02)
        return None

    def wait_for_output(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.stdout():
                return True
            if not self.running():
                return needle in self.stdout()
            time.sleep(0.02)
        return False

    def report(self):
        for stream, text in (("stdout", self.stdout()), ("stderr", self.stderr())):
            for line in text.splitlines()[-40:]:
                print(f"  {self.name} {stream} | {line}")


class Scene:
    """A test's resources: a temporary directory, kvmlet processes, network namespaces; all
    removed on exit, also when the test fails or raises."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=f"kvmlet-{prefix}.", dir=os.environ.get("TMPDIR", "/tmp"))
        self.processes = []
        self.namespaces = []

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        return self

    @staticmethod
    def _on_signal(signum, _frame):
        raise SystemExit(f"FAIL: stopped by signal {signum}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def kvmlet(self, argv, **kw):
        k = Kvmlet(argv, self.dir, name=kw.pop("name", f"kvmlet{len(self.processes)}"), **kw)
        self.processes.append(k)
        return k

    @staticmethod
    def remove_orphaned_namespaces():
        """Namespaces these tests made in a run that was killed (named after its PID, no longer
        alive): an earlier SIGKILL left them, nothing else will remove them."""
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        for name in re.findall(r"^(kvmlet-api-[a-z]+-(\d+))\b", listing, re.M):
            if not os.path.exists(f"/proc/{name[1]}"):
                print(f"removing network namespace {name[0]}, left by a killed run")
                subprocess.run(["ip", "netns", "del", name[0]], check=False)

    def netns(self, tag):
        """A network namespace of this test's own, with IPv6 off and TAP `tap0` up in it."""
        self.remove_orphaned_namespaces()
        name = f"kvmlet-api-{tag}-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "exec", name, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap"],
                       check=True)
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "tap0", "up"], check=True)
        return name

    def __exit__(self, exc_type, exc, tb):
        for k in self.processes:
            if k.running():
                print(f"cleanup: killing {k.name} (pid {k.pid})")
            k.stop()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "del", "tap0"],
                           stderr=subprocess.DEVNULL, check=False)
            if subprocess.run(["ip", "netns", "del", ns], check=False).returncode != 0:
                print(f"cleanup: could not remove network namespace {ns}", file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def main(cases, argv):
    """Runs the case named argv[1] (of `cases`: name -> function(args) -> exit status)."""
    if len(argv) < 2 or argv[1] not in cases:
        print(f"usage: {os.path.basename(argv[0])} CASE KVMLET GUESTS_DIR CONTRACT_YAML\n"
              f"cases: {', '.join(cases)}", file=sys.stderr)
        return 2
    if len(argv) != 5:
        print("expected: CASE KVMLET GUESTS_DIR CONTRACT_YAML", file=sys.stderr)
        return 2
    case, kvmlet, guests, contract_yaml = argv[1:]
    require_kvm()
    try:
        return cases[case](Args(kvmlet, guests, contract_yaml))
    except SystemExit:
        raise
    except Exception:  # a crash of the test is a failure with its traceback, never a pass
        traceback.print_exc()
        return 1


class Args:
    def __init__(self, kvmlet, guests, contract_yaml):
        self.kvmlet = os.path.abspath(kvmlet)
        self.guests = os.path.abspath(guests)
        self.contract = Contract(contract_yaml)

    def guest(self, name):
        path = os.path.join(self.guests, f"{name}.elf")
        if not os.path.isfile(path):
            raise SystemExit(f"FAIL: guest {path} is missing (build it)")
        return path
