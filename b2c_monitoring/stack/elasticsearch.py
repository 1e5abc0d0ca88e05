"""Elasticsearch as a local process of the stack.

The distribution is Elastic's ``integ-test-zip`` from Maven Central
(``org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip``): the
server with the netty transport, x-pack-core, x-pack-security and apm modules, and
no bundled JDK. It has none of the ingest-common, painless, reindex, data-streams,
mapper-extras or analysis-common modules, so the project uses plain indices, its own
index templates (``storage/es_templates``), keyword/text/numeric/date fields only, and
deletes whole time-based indices for retention. Settings of absent plugins stop the
node, so ``elasticsearch.yml`` names only core and x-pack-security settings.

The version and the JDK are read from ``versions.toml`` (``[elasticsearch]``): 8.x runs
on Java 17, which matches the ``elasticsearch>=8,<9`` Python client.

Elasticsearch refuses to run as root. When the stack runs as root, the node runs as
the system user ``b2c-es`` (created on demand) (``Launch.user``); its data,
log, temp and config folders belong to that user, and every folder above them gets
the search (x) bit for others if that user could not pass it (``/root`` is 0700).
When the stack does not run as root, the node runs as the current user.

Files of one stack (``layout``):

- ``data/elasticsearch/``          path.data (owned by the node's user)
- ``logs/elasticsearch.log``       the process's stdout/stderr (the supervisor's)
- ``logs/elasticsearch/``          path.logs: the node's own logs, gc.log, hs_err files
- ``run/elasticsearch/config/``    ES_PATH_CONF: the distribution's config with our
  ``elasticsearch.yml`` and ``jvm.options``
- ``run/elasticsearch/tmp/``       ES_TMPDIR
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Launch, Progress, StackLayout, load_versions
from b2c_monitoring.stack.secrets import StackSecrets
from b2c_monitoring.stack.system import chown_tree, ensure_system_user, grant_search_path, user_ids
from b2c_monitoring.storage.logs import daily_index

MAVEN_GROUP: Final = "org.elasticsearch.distribution.integ-test-zip"
MAVEN_ARTIFACT: Final = "elasticsearch"
DEFAULT_USER: Final = "b2c-es"
DEFAULT_HEAP: Final = "-Xms512m -Xmx1g"
CLUSTER_NAME: Final = "b2c-monitoring"
NODE_NAME: Final = "b2c-local"
LOG_TEMPLATE_NAME: Final = "b2c-logs"
SUPERUSER: Final = "elastic"
COLLECTOR_USER: Final = "b2c_collector"
PROCESSOR_USER: Final = "b2c_processor"
API_USER: Final = "b2c_api"
GRAFANA_USER: Final = "b2c_grafana"


def pbkdf2_hash(password: str, *, cost: int = 10_000) -> str:
    """``password`` in Elasticsearch's ``{PBKDF2}`` format (HMAC-SHA512, 256-bit key,
    ``{PBKDF2}<cost>$<base64 salt>$<base64 key>``), which its file realm verifies."""
    salt = secrets.token_bytes(32)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, cost, dklen=32)
    return f"{{PBKDF2}}{cost}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def render_roles_yml(roles: Mapping[str, Mapping[str, Any]]) -> str:
    """``roles.yml`` in block style, a role per top-level key: the file realm reads one
    role per top-level block and skips a JSON-style file after its first role."""
    lines: list[str] = []
    for name, role in roles.items():
        lines.append(f"{name}:")
        if role.get("cluster"):
            lines.append(f"  cluster: {json.dumps(role['cluster'])}")
        lines.append("  indices:")
        for entry in role["indices"]:
            lines.append(f"    - names: {json.dumps(entry['names'])}")
            lines.append(f"      privileges: {json.dumps(entry['privileges'])}")
    return "\n".join(lines) + "\n"


def security_roles(logs_index: str) -> dict[str, dict[str, Any]]:
    """The roles of the stack's users (file realm), one each, on the log indices only.

    The collector appends documents (``create_doc``: it can neither overwrite nor
    delete one); the processor's maintenance creates and deletes the daily indices and
    its alert rules search them; the API and Grafana read. Nobody but ``elastic`` (the
    stack's setup: templates) changes the cluster."""
    indices = [f"{logs_index}*"]
    return {
        COLLECTOR_USER: {
            "indices": [{"names": indices, "privileges": ["create_doc", "create_index"]}]
        },
        PROCESSOR_USER: {
            "cluster": ["monitor"],
            "indices": [
                {
                    "names": indices,
                    "privileges": [
                        "read",
                        "view_index_metadata",
                        "monitor",
                        "create_index",
                        "delete_index",
                    ],
                }
            ],
        },
        API_USER: {
            "indices": [
                {"names": indices, "privileges": ["read", "view_index_metadata", "monitor"]}
            ]
        },
        # "monitor" on the cluster: Grafana reads the version from GET /
        GRAFANA_USER: {
            "cluster": ["monitor"],
            "indices": [{"names": indices, "privileges": ["read", "view_index_metadata"]}],
        },
    }


_FALLBACK_JAVA_HOMES: Final = (
    "/usr/lib/jvm/java-17-openjdk-amd64",
    "/usr/lib/jvm/default-java",
)
_DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --------------------------------------------------------------------------------------
# versions and installation


def es_version(versions: Mapping[str, Mapping[str, object]] | None = None) -> str:
    """The Elasticsearch version named in ``versions.toml``."""
    version = (versions or load_versions()).get("elasticsearch", {}).get("version")
    if not isinstance(version, str) or not version:
        raise StackError("versions.toml: [elasticsearch] version is missing")
    return version


def es_java_home(versions: Mapping[str, Mapping[str, object]] | None = None) -> Path:
    """The JDK Elasticsearch runs on: ``[elasticsearch] java_home`` of ``versions.toml``,
    else (for 8.x, which runs on Java 17+) the machine's Java 17 or default JDK."""
    table = (versions or load_versions()).get("elasticsearch", {})
    version = es_version(versions)
    candidates: list[str] = []
    configured = table.get("java_home")
    if isinstance(configured, str) and configured:
        candidates.append(configured)
    if version.split(".")[0] == "8":  # 9.x needs 21+ and must be configured
        candidates.extend(_FALLBACK_JAVA_HOMES)
    for candidate in candidates:
        if (Path(candidate) / "bin" / "java").is_file():
            return Path(candidate)
    raise StackError(
        f"no JDK for Elasticsearch {version}: set [elasticsearch] java_home in versions.toml "
        f"(tried {', '.join(candidates) or 'nothing'})"
    )


def _extract_zip(archive: Path, target: Path) -> None:
    """Unpack the distribution keeping the file modes; ``target`` becomes ES_HOME."""
    with zipfile.ZipFile(archive) as zf:
        top = {name.split("/", 1)[0] for name in zf.namelist()}
        if len(top) != 1:
            raise StackError(f"{archive.name}: expected one top folder, found {sorted(top)}")
        prefix = top.pop() + "/"
        for info in zf.infolist():
            rel = info.filename[len(prefix) :]
            if not rel:
                continue
            dest = (target / rel).resolve()
            if not dest.is_relative_to(target.resolve()):
                raise StackError(f"{archive.name}: unsafe path {info.filename}")
            mode = (info.external_attr >> 16) & 0o777
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                dest.chmod(mode | 0o755)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            dest.chmod((mode or 0o644) | 0o444)


def install_distribution(cache: Path, version: str, progress: Progress) -> Path:
    """Download (Maven, strict checksums) and unpack Elasticsearch ``version`` into
    ``<cache>/elasticsearch/<version>/``; quick when it is there already."""
    base = cache / "elasticsearch"
    home = base / version
    if (home / "bin" / "elasticsearch").is_file() and (home / "lib").is_dir():
        progress(f"elasticsearch: {version} already installed in {home}")
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch Elasticsearch: apt-get install maven")
    base.mkdir(parents=True, exist_ok=True)
    archive = base / f"{MAVEN_ARTIFACT}-{version}.zip"
    if not archive.is_file():
        coords = f"{MAVEN_GROUP}:{MAVEN_ARTIFACT}:{version}:zip"
        progress(f"elasticsearch: downloading {coords} with Maven")
        done = subprocess.run(
            [
                mvn,
                "-C",
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact={coords}",
                f"-DoutputDirectory={base}",
            ],
            cwd=base,  # no pom.xml here: the plugin runs without a project
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not archive.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise StackError(f"mvn dependency:copy {coords} failed:\n{tail}")
    progress(f"elasticsearch: unpacking {archive.name}")
    staging = base / f".{version}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _extract_zip(archive, staging)
        try:
            staging.rename(home)
        except OSError:
            if not (home / "bin" / "elasticsearch").is_file():  # not a concurrent install
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)  # Maven's local repository keeps a copy
    progress(f"elasticsearch: {version} installed in {home}")
    return home


# --------------------------------------------------------------------------------------
# configuration


def render_elasticsearch_yml(*, data: Path, logs: Path, http_port: int, transport_port: int) -> str:
    settings: dict[str, object] = {
        "cluster.name": CLUSTER_NAME,
        "node.name": NODE_NAME,
        "path.data": str(data),
        "path.logs": str(logs),
        "network.host": "127.0.0.1",
        "http.port": http_port,
        "transport.port": transport_port,
        "discovery.type": "single-node",
        # x-pack-security is in the zip: every request logs in (basic auth, users of the
        # native realm made in after_start). HTTP stays plaintext on loopback, and a
        # single node needs no transport TLS; stated, so nothing is auto-configured
        "xpack.security.enabled": True,
        "xpack.security.http.ssl.enabled": False,
        "xpack.security.transport.ssl.enabled": False,
        "xpack.security.enrollment.enabled": False,
        # small test disks must not turn indices read-only
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    lines = ["# Written by b2c_monitoring.stack.elasticsearch; changes are overwritten."]
    lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def render_jvm_options(distribution_options: str, logs: Path) -> str:
    """The distribution's jvm.options with every file it names moved into ``logs``
    (it names them relative to the working folder) and no heap dumps (a 1 GiB file
    per crash on a small test disk)."""
    out: list[str] = []
    for line in distribution_options.splitlines():
        bare = line.strip()
        if bare.startswith("-XX:ErrorFile="):
            line = f"-XX:ErrorFile={logs}/hs_err_pid%p.log"
        elif bare.startswith("-Xlog:gc"):
            line = (
                f"-Xlog:gc*,gc+age=trace,safepoint:file={logs}/gc.log"
                ":utctime,level,pid,tags:filecount=4,filesize=16m"
            )
        elif bare == "-XX:+HeapDumpOnOutOfMemoryError":
            line = "-XX:-HeapDumpOnOutOfMemoryError"
        out.append(line)
    return "\n".join(out) + "\n"


def split_credentials(url: str) -> tuple[str, str | None]:
    """``http://user:password@host:port/...`` as the URL without its user and the
    ``Authorization`` header value it stands for (urllib ignores a URL's user part)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _http_json(method: str, url: str, body: object | None = None, timeout: float = 10.0) -> Any:
    if not url.startswith(("http://", "https://")):
        raise StackError(f"not an http(s) URL: {url}")
    bare, authorization = split_credentials(url)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(bare, data=data, method=method)  # noqa: S310 (checked above)
    req.add_header("Accept", "application/json")
    if authorization is not None:
        req.add_header("Authorization", authorization)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        raise StackError(f"{method} {bare}: HTTP {exc.code}: {detail}") from exc
    except (OSError, ValueError) as exc:
        raise StackError(f"{method} {bare}: {exc}") from exc
    return json.loads(raw) if raw else None


# --------------------------------------------------------------------------------------
# the log index template


def log_template() -> dict[str, Any]:
    """The composable index template ``b2c-logs`` (``storage/es_templates/b2c-logs.json``).

    It maps the documents of the collector's elasticsearch exporter in mapping mode
    ``none`` (``mapping: {allowed_modes: [none]}``), each routed by its
    ``elasticsearch.index`` attribute to the daily index ``b2c-logs-YYYY.MM.DD`` of the
    record's UTC date (``transform/bound_logs``; the attribute stays in ``_source``,
    neither indexed nor aggregatable: excluding it from ``_source`` made Elasticsearch
    keep a second, recovery copy of every source, ~20 % more disk and CPU). The pattern ``b2c-logs*`` also covers the single ``b2c-logs`` index of
    the first version. The exporter writes one document per log record with flat dotted
    keys::

        {"@timestamp": "2024-01-15T10:30:00.000000000Z",   # record time, else observed
         "Body": "message text",                          # a map body becomes Body.<k>
         "SeverityText": "INFO", "SeverityNumber": 9,
         "TraceId": "<32 hex>", "SpanId": "<16 hex>", "TraceFlags": 1,
         "Attributes.<record attribute>": ...,            # e.g. Attributes.tenant.id
         "Resource.<resource attribute>": ...,            # e.g. Resource.service.name
         "Scope.name": ..., "Scope.version": ..., "Scope.<scope attribute>": ...}

    Mode ``raw`` is the same without the ``Attributes.`` prefix, so record attributes
    would share the top level with ``Body``/``Resource``/``Scope``; ``none`` keeps the
    three attribute sets apart and is the mode we use. The OTLP ``event_name`` field of
    a record is not written in either mode: events are named by the ``event.name``
    attribute.

    ``Attributes``, ``Resource`` and ``Scope`` are objects with ``subobjects: false``:
    ``Attributes.http.request.body`` and ``Attributes.http.request.body.size`` are two
    leaf fields instead of an object/value conflict that would reject documents.

    Fields our queries rely on (all exact-match ``keyword`` unless noted):

    - ``@timestamp`` (``date_nanos``): time range filters and sorting
    - ``Attributes.tenant.id`` (and ``Resource.tenant.id`` when set on the resource):
      tenant isolation, in every query
    - ``Resource.service.name``: the emitting service
    - ``Attributes.scheduler.job.id``, ``Attributes.scheduler.job.state``: a job's logs
    - ``Attributes.connected_service.name``: logs about one connected service
    - ``Attributes.event.name``: named events, e.g.
      ``connected_service.communication_error``
    - ``SeverityNumber`` (``short``) and ``SeverityText``: level filters
    - ``TraceId``/``SpanId``: jump from a span to its logs
    - ``Body`` (``text``, the default field of query_string): full-text search

    Request/response bodies go in attributes whose names end in ``request.body`` or
    ``response.body`` (and ``exception.stacktrace``): kept in ``_source``, neither
    indexed nor aggregatable. Sizes are bounded by the collector before the mapping
    sees them (``transform/bound_logs``: a body 64 KiB, an attribute value 16 KiB, 128
    attributes a record, nested maps flattened). Any other string attribute becomes a
    ``keyword`` with doc values and no inverted index (``index: false``,
    ``ignore_above: 1024``): term, prefix, wildcard and exists queries and aggregations
    still work on it, by scanning doc values (slower, fine for the long tail). Fields a
    query of ours filters on are mapped above and keep their inverted index.
    ``TraceId``/``SpanId`` are indexed without doc values (looked up, never sorted or
    aggregated), ``Body`` without norms (log search sorts by time, never by score).
    Together: ~12 % less Elasticsearch CPU and ~22 % less disk a record (version 3);
    ``index.mapping.ignore_malformed`` keeps a document whose value does not fit an
    existing numeric/date field instead of rejecting it, and
    ``total_fields.ignore_dynamic_beyond_limit`` keeps a document that would add a
    field beyond the 2,000th (the new fields stay in ``_source``, unmapped) instead of
    rejecting it.
    """
    source = resources.files("b2c_monitoring.storage").joinpath("es_templates", "b2c-logs.json")
    loaded: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return loaded


def put_log_templates(base_url: str) -> None:
    """PUT the ``b2c-logs`` index template (see :func:`log_template`); idempotent."""
    _http_json("PUT", f"{base_url.rstrip('/')}/_index_template/{LOG_TEMPLATE_NAME}", log_template())


def ensure_log_index(base_url: str, index: str) -> None:
    """Create the collector's log index now and wait until its shard is active.

    Left to the first log record, the index would be created by a write, and a search
    racing that creation fails on a shard not yet started (a 503 to the API's user)."""
    base = base_url.rstrip("/")
    try:
        _http_json("PUT", f"{base}/{index}")
    except StackError as exc:
        if "resource_already_exists_exception" not in str(exc):
            raise
    _http_json(
        "GET", f"{base}/_cluster/health/{index}?wait_for_status=yellow&timeout=30s", timeout=40
    )


# --------------------------------------------------------------------------------------
# the part


class Elasticsearch:
    """One single-node Elasticsearch of the stack, on 127.0.0.1:``ports.elasticsearch``."""

    name = "elasticsearch"

    def __init__(
        self,
        layout: StackLayout,
        *,
        version: str | None = None,
        java_home: Path | None = None,
        user: str = DEFAULT_USER,
        heap: str = DEFAULT_HEAP,
        logs_index: str = LOG_TEMPLATE_NAME,
    ) -> None:
        self.layout = layout
        self.logs_index = logs_index  # the prefix of the daily indices
        self.version = version or es_version()
        self._java_home = java_home  # resolved when needed: status must work without a JDK
        # root must not run it; anybody else runs it as themselves
        self.user: str | None = user if os.geteuid() == 0 else None
        self.heap = heap
        self.secrets = StackSecrets(layout)

    def password(self, user: str) -> str:
        return self.secrets.password(f"es:{user}")

    def url_for(self, user: str) -> str:
        """The node's URL logging in as ``user`` (a stack user, or ``elastic``)."""
        port = self.layout.ports.elasticsearch
        return f"http://{user}:{self.password(user)}@127.0.0.1:{port}"

    @property
    def admin_url(self) -> str:
        """As the superuser ``elastic``: the stack's setup and tests only."""
        return self.url_for(SUPERUSER)

    @property
    def processor_url(self) -> str:
        return self.url_for(PROCESSOR_USER)

    @property
    def api_url(self) -> str:
        return self.url_for(API_USER)

    @property
    def grafana_url(self) -> str:
        return self.url_for(GRAFANA_USER)

    @property
    def collector_credentials(self) -> tuple[str, str]:
        """User and password of the collector's elasticsearch exporter."""
        return COLLECTOR_USER, self.password(COLLECTOR_USER)

    @property
    def java_home(self) -> Path:
        if self._java_home is None:
            self._java_home = es_java_home()
        return self._java_home

    @property
    def es_home(self) -> Path:
        return self.layout.cache / "elasticsearch" / self.version

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.ports.elasticsearch}"

    @property
    def data_dir(self) -> Path:
        return self.layout.data(self.name)

    @property
    def logs_dir(self) -> Path:
        """path.logs: the node's own log files (not the process's stdout log)."""
        return self.layout.log(self.name).parent / self.name

    @property
    def config_dir(self) -> Path:
        return self.layout.run(self.name) / "config"

    @property
    def tmp_dir(self) -> Path:
        return self.layout.run(self.name) / "tmp"

    def install(self, progress: Progress) -> None:
        progress(f"elasticsearch: runs on the JDK in {self.java_home}")
        install_distribution(self.layout.cache, self.version, progress)
        if self.user is not None:
            ensure_system_user(self.user, progress)
            grant_search_path(self.es_home / "bin" / "elasticsearch", self.user, progress)

    def prepare(self) -> Launch:
        if not (self.es_home / "bin" / "elasticsearch").is_file():
            raise StackError(f"Elasticsearch {self.version} is not installed in {self.es_home}")
        for folder in (self.data_dir, self.logs_dir, self.config_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.layout.log(self.name).parent.mkdir(parents=True, exist_ok=True)

        dist_config = self.es_home / "config"
        for item in dist_config.iterdir():
            dest = self.config_dir / item.name
            if item.is_dir():
                shutil.copytree(item, dest, dirs_exist_ok=True)
            elif not dest.exists():
                shutil.copy2(item, dest)
        (self.config_dir / "elasticsearch.yml").write_text(
            render_elasticsearch_yml(
                data=self.data_dir,
                logs=self.logs_dir,
                http_port=self.layout.ports.elasticsearch,
                transport_port=self.layout.ports.elasticsearch_transport,
            )
        )
        (self.config_dir / "jvm.options").write_text(
            render_jvm_options((dist_config / "jvm.options").read_text(), self.logs_dir)
        )
        self._write_file_realm()
        self.tmp_dir.chmod(0o700)

        if self.user is not None:
            uid, gid, _ = user_ids(self.user)
            for folder in (self.data_dir, self.logs_dir, self.config_dir, self.tmp_dir):
                chown_tree(folder, uid, gid)
                grant_search_path(folder, self.user, lambda _line: None)
            grant_search_path(self.es_home / "bin" / "elasticsearch", self.user, lambda _l: None)

        env = {
            "ES_JAVA_HOME": str(self.java_home),
            "ES_PATH_CONF": str(self.config_dir),
            "ES_TMPDIR": str(self.tmp_dir),
            "ES_JAVA_OPTS": self.heap,
            "PATH": os.environ.get("PATH", _DEFAULT_PATH),
            "LANG": "C.UTF-8",
        }
        self._ensure_keystore(env)
        return Launch(
            argv=[str(self.es_home / "bin" / "elasticsearch")],
            env=env,
            cwd=self.logs_dir,
            user=self.user,
        )

    def _write_file_realm(self) -> None:
        """The stack's users in the file realm (``users``, ``users_roles``,
        ``roles.yml`` of ES_PATH_CONF), rewritten at every start from the home's
        passwords. Not the native realm: its ``.security`` index needs the
        analysis-common module, which this distribution lacks."""
        roles = security_roles(self.logs_index)
        files = {
            "users": "".join(f"{u}:{pbkdf2_hash(self.password(u))}\n" for u in roles),
            "users_roles": "".join(f"{u}:{u}\n" for u in roles),
            "roles.yml": render_roles_yml(roles),
        }
        for name, text in files.items():
            path = self.config_dir / name
            path.write_text(text)
            path.chmod(0o600)

    def _ensure_keystore(self, env: Mapping[str, str]) -> None:
        """``elastic``'s first password, as ``bootstrap.password`` in the keystore: the
        node takes it until the password is stored in its security index, and the stack
        never changes it afterwards (so the keystore's stays the true one)."""
        keystore = self.config_dir / "elasticsearch.keystore"
        if keystore.exists():
            return
        tool = str(self.es_home / "bin" / "elasticsearch-keystore")
        run_env = {**env, "ES_JAVA_OPTS": "-Xms64m -Xmx128m"}
        # root's group must not stay: /root lets others pass, not its group
        group = user_ids(self.user)[1] if self.user is not None else None
        for argv, stdin in (
            ([tool, "create"], None),
            ([tool, "add", "-x", "-f", "bootstrap.password"], self.password(SUPERUSER)),
        ):
            done = subprocess.run(
                argv,
                input=stdin,
                env=run_env,
                cwd=self.config_dir,
                user=self.user,
                group=group,
                extra_groups=[] if self.user is not None else None,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                keystore.unlink(missing_ok=True)
                raise StackError(
                    f"elasticsearch-keystore {argv[1]} failed: {(done.stdout + done.stderr)[-2000:]}"
                )

    def after_start(self, progress: Progress) -> None:
        """Called by the supervisor once healthy: the log index template must exist
        before the collector writes the first document of an index. Today's index is
        created now; the processor's maintenance creates the next ones a day ahead."""
        put_log_templates(self.admin_url)
        today = daily_index(self.logs_index, datetime.now(UTC).date())
        ensure_log_index(self.admin_url, today)
        progress(f"elasticsearch: index template {LOG_TEMPLATE_NAME} applied, index {today} ready")

    def healthy(self) -> bool:
        """The cluster answers GET /_cluster/health with status green or yellow."""
        try:
            health = _http_json("GET", f"{self.admin_url}/_cluster/health", timeout=2.0)
        except StackError:
            return False
        return isinstance(health, dict) and health.get("status") in ("green", "yellow")

    def endpoints(self) -> dict[str, str]:
        return {"elasticsearch": self.url}
