"""Realistic, deterministic data for the demo, the tests and the benchmarks.

Clusters, users, nodes, GPU models and jobs, shaped exactly as Clockwork stores
them. Every draw comes from its own ``random.Random`` seeded with the caller's
seed (never the global generator), so the same ``seed`` and ``now`` give the
same data on every machine. Jobs stream from a generator: a million of them
never sit in memory at once.

Conventions the rest of Clockwork can rely on (the scrapers produce the same):

* TRES dicts use Slurm's names as keys (``cpu``, ``mem``, ``node``, ``billing``,
  ``gres/gpu``, ``gres/gpu:<type>``) and plain ints as values; ``mem`` is in MB.
  ``tres_allocated`` is empty until a job starts.
* ``num_gpus`` is ``tres_allocated["gres/gpu"]`` once a job started, its request
  before, and ``0`` for a CPU job; ``gpu_type`` is the GRES type or None.
* ``num_cpus``/``mem_mb`` are the job's totals (all nodes), as in the TRES.
* Times are UTC-aware datetimes in whole seconds: ``submit <= start <= end <= now``;
  a job that never started has no start, an unfinished job has no end.
* Job ids increase with submit time and are unique per cluster. An array's
  ``array_job_id`` is its first task's ``job_id``, a het job's ``het_job_id`` its
  first component's ``job_id``, as Slurm does.
* ``exit_code``/``signal`` are None until a job ends; steps are dicts
  ``{"step_id", "name", "state", "exit_code", "signal"}``.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import random
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database
from pymongo.errors import BulkWriteError

from clockwork_core.db import ensure_indexes
from clockwork_core.schema import (
    FINAL_STATES,
    JOB_STATES,
    Job,
    Node,
    job_document,
    node_document,
    state_bucket,
)

#: How far back the generated jobs go.
HISTORY_DAYS = 90
#: Share of the jobs submitted during the last day (the live ones among them).
LIVE_FRACTION = 0.08
#: Domain of every generated email address.
EMAIL_DOMAIN = "example.org"
#: The demo logins, in order: (email stem, display name, roles, cluster username stem).
DEMO_USERS: tuple[tuple[str, str, list[str], str], ...] = (
    ("admin", "Ada Admin", ["admin"], "cwadmin"),
    ("staff", "Sam Staff", ["staff"], "cwstaff"),
    ("student", "Stéphane Student", ["user"], "student"),
)

# --------------------------------------------------------------------------- static data

_GPU_COLUMNS = (
    "name", "vendor", "arch", "memory_gb", "tflops_fp32", "tflops_fp16_tensor", "cores",
    "tdp_w", "form_factor", "compute_capability", "release_year", "display_name",
)  # fmt: skip
_GPU_TABLE = """
a100    | NVIDIA | Ampere       | 40 | 19.5 | 312.0 | 6912  | 400 | SXM4 | 8.0 | 2020 | NVIDIA A100-SXM4-40GB
a100l   | NVIDIA | Ampere       | 80 | 19.5 | 312.0 | 6912  | 400 | SXM4 | 8.0 | 2020 | NVIDIA A100-SXM4-80GB
h100    | NVIDIA | Hopper       | 80 | 67.0 | 989.0 | 16896 | 700 | SXM5 | 9.0 | 2022 | NVIDIA H100 80GB HBM3
v100    | NVIDIA | Volta        | 32 | 15.7 | 125.0 | 5120  | 300 | SXM2 | 7.0 | 2017 | Tesla V100-SXM2-32GB
rtx8000 | NVIDIA | Turing       | 48 | 16.3 | 130.5 | 4608  | 295 | PCIe | 7.5 | 2018 | Quadro RTX 8000
l40s    | NVIDIA | Ada Lovelace | 48 | 91.6 | 362.0 | 18176 | 350 | PCIe | 8.9 | 2023 | NVIDIA L40S
mi210   | AMD    | CDNA2        | 64 | 22.6 | 181.0 | 6656  | 300 | PCIe | -   | 2022 | AMD Instinct MI210
"""


def _gpu_record(line: str) -> dict[str, Any]:
    """One row of the GPU table as a ``gpus`` document (numbers as numbers, ``-`` as None)."""
    record: dict[str, Any] = {}
    for column, raw in zip(_GPU_COLUMNS, line.split("|"), strict=True):
        value = raw.strip()
        if column in ("memory_gb", "cores", "tdp_w", "release_year"):
            record[column] = int(value)
        elif column.startswith("tflops"):
            record[column] = float(value)
        else:
            record[column] = None if value == "-" else value
    return record


_GROUP = re.compile(r"^(?P<prefix>[^\[]+)\[(?P<lo>\d+)-(?P<hi>\d+)\]$")


def _node_groups(table: str) -> list[dict[str, Any]]:
    """Parse a node table; one line per group of alike nodes.

    Grammar: ``prefix[first-last] cpus mem_mb gpus partitions features`` where
    ``gpus`` is ``-`` or ``type:count`` and the last two are comma lists.
    """
    groups = []
    for line in table.strip().splitlines():
        hosts, cpus, mem, gpus, partitions, features = line.split()
        match = _GROUP.match(hosts)
        if match is None:
            raise ValueError(f"bad node group {hosts!r}")
        lo, hi = match["lo"], match["hi"]
        gpu_type, _, count = gpus.partition(":")
        groups.append(
            {
                "prefix": match["prefix"],
                "first": int(lo),
                "count": int(hi) - int(lo) + 1,
                "width": len(lo),
                "cpus": int(cpus),
                "mem_mb": int(mem),
                "gpu_type": gpu_type if count else None,
                "gpus": int(count) if count else 0,
                "partitions": partitions.split(","),
                "features": features.split(","),
            }
        )
    return groups


_DRAC_CPU = "cpubase_bycore_b1,cpubase_bynode_b1,cpubase_bycore_b3"
_DRAC_GPU = "gpubase_bygpu_b1,gpubase_bygpu_b3,gpubase_bynode_b1"

_CLUSTERS: dict[str, dict[str, Any]] = {
    "mila": {
        "display_name": "Mila",
        "timezone": "America/Montreal",
        "style": "mila",
        "weight": 5.0,
        "job_id_start": 4_100_000,
        "accounts": ["mila"],
        "qos": ["normal", "normal", "normal", "high", "low"],
        "node_groups": _node_groups("""
cn-a[001-011]  40  385000  rtx8000:8  long,main,unkillable        x86_64,turing,48gb
cn-b[001-005]  40  385000  v100:8     long,main,unkillable        x86_64,volta,nvlink,32gb
cn-g[001-029]  64  1031000 a100l:4    long,main,short-unkillable  x86_64,ampere,nvlink,80gb
cn-n[001-004]  96  2063000 h100:8     long,short-unkillable       x86_64,hopper,nvlink,80gb
cn-f[001-004]  32  257000  -          long-cpu,main-cpu           x86_64,avx2
cn-c[001-040]  64  385000  -          long-cpu,main-cpu           x86_64,avx512,skylake
"""),
    },
    "narval": {
        "display_name": "Narval (Calcul Québec)",
        "timezone": "America/Montreal",
        "style": "drac",
        "weight": 3.0,
        "job_id_start": 41_000_000,
        "accounts": ["def-bengioy", "rrg-bengioy-ad", "def-courvila", "def-lpaull"],
        "qos": ["normal"],
        "node_groups": _node_groups(f"""
nc[10001-10080]  64  249000  -       {_DRAC_CPU}  x86_64,amd,rome
ng[10101-10140]  48  498000  a100:4  {_DRAC_GPU}  x86_64,amd,milan,a100
"""),
    },
    "beluga": {
        "display_name": "Béluga",
        "timezone": "America/Montreal",
        "style": "drac",
        "weight": 2.0,
        "job_id_start": 61_000_000,
        "accounts": ["def-bengioy", "rrg-bengioy-ad", "def-courvila"],
        "qos": ["normal"],
        "node_groups": _node_groups(f"""
blg[4101-4160]  40  186000  -       {_DRAC_CPU}  x86_64,intel,skylake
blg[5101-5120]  40  186000  v100:4  {_DRAC_GPU}  x86_64,intel,skylake,v100
"""),
    },
}


def _choices(text: str) -> tuple[str, ...]:
    """The ``|``-separated items of a text table (names may hold spaces)."""
    return tuple(item.strip() for item in text.replace("\n", " ").split("|") if item.strip())


_FIRST_NAMES = _choices("""
Alice | Bruno | Chloé | Daniel | Émilie | François | Gabriel | Hélène | Ibrahim | José |
Kenji | Léa | Łukasz | Mei | Noémie | Olúwaseun | Priya | Quentin | Rosa | Søren | Thị Lan |
Umar | Valérie | Wei | Xavier | Yasmine | Zoë | Aïcha | Björn | Anaïs
""")
_LAST_NAMES = _choices("""
Tremblay | Gagnon | Nguyễn | O'Brien | Müller | Côté | Zhang | García | Kowalski | Roy |
Bouchard | Smith-Jones | de la Fontaine | Øvergaard | Lefèvre | Okafor | Papadopoulos |
Şahin | Ivanov | Bélanger
""")

_JOB_NAMES = _choices("""
train | train_resnet50 | finetune-llama-7b | eval | preprocess.sh | sweep | run.sh | main.py
| ppo_atari | diffusion-unet | bert-base-mlm | data_prep | wandb-agent | sbatch_job.sh |
test | gen_samples | hparam_search | vit_b16 | gnn_molecules | rl_mujoco | tokenize_corpus |
jupyter-notebook | baseline
""")
_INTERACTIVE_NAMES = ("bash", "interactive", "sh", "zsh")
#: Names a web page must escape and a shell must never see unquoted.
ODD_NAMES = (
    "a|b|c pipe|separated",
    'quote"d "name"',
    "it's a job",
    "<script>alert(1)</script>",
    "🚀 launch-🔥 run",
    "entraînement_modèle_été",
    "训练模型",
    "обучение-модели",
    "$(rm -rf ~)",
    "`id`; echo pwned",
    "50% done {0} %s %(name)s",
    "very_long_job_name_" + "abcdefghij" * 20,
    "back\\slash\\name",
    "semi;colon&amp;",
    "' OR '1'='1",
    '{"$gt": ""}',
    "../../etc/passwd",
    "name with  double  spaces",
    "key=value:other",
)
_COMMENTS = (
    "see ticket #1234",
    'wandb: {"run": "abc123", "project": "llm"}',
    "priorité: haute — à relancer",
    "<b>bold</b> & <i>italic</i>",
    "a|b|c",
    "restart of a previous job",
    "",
    "🙏 please don't preempt",
)
_PROJECTS = (
    "projects/llm",
    "code/rl",
    "exp/été-2024",
    "my project",
    "runs/2024-05-01",
    "diffusion",
    "src/github.com/lab/repo",
)
_NODE_REASONS = (
    "Kill task failed",
    "NHC: check_fs_mount:  /network/scratch not mounted",
    'gpu "0" fell off the bus',
    "Réparation prévue — voir ticket #4521",
    'reboot ASAP: "memory errors" on DIMM B2',
    "root@2024-01-01T10:00:00: bad DIMM",
    "<b>not html</b> | pipe",
    "Not responding",
    "maintenance 🛠️ (firmware)",
    "batch job complete failure",
    "Prolog error",
)
#: time limits in minutes, with how often users pick each.
_TIME_LIMITS = (15, 30, 60, 120, 180, 360, 720, 1440, 2880, 4320, 10080)
_TIME_LIMIT_CUM = tuple(itertools.accumulate((3, 5, 10, 8, 10, 8, 12, 20, 12, 6, 6)))
_FAIL_CODES = (1, 1, 1, 1, 2, 2, 127, 137, 139, 255, 134, 3)

#: Base states of jobs that ended before the last day, and their frequencies.
_HIST_WEIGHTS: dict[str, float] = {
    "COMPLETED": 62.0,
    "FAILED": 12.0,
    "CANCELLED": 10.0,
    "TIMEOUT": 6.0,
    "OUT_OF_MEMORY": 4.0,
    "PREEMPTED": 2.5,
    "NODE_FAIL": 1.0,
    "BOOT_FAIL": 0.5,
    "DEADLINE": 0.4,
    "REVOKED": 0.3,
    "SPECIAL_EXIT": 0.3,
}
#: States of jobs submitted during the last day.
_LIVE_WEIGHTS: dict[str, float] = {
    "RUNNING": 34.0,
    "PENDING": 26.0,
    "COMPLETED": 18.0,
    "FAILED": 4.0,
    "CANCELLED": 4.0,
    "TIMEOUT": 1.0,
    "OUT_OF_MEMORY": 1.0,
    "COMPLETING": 1.5,
    "CONFIGURING": 1.0,
    "SUSPENDED": 0.7,
    "STOPPED": 0.3,
    "SIGNALING": 0.3,
    "STAGE_OUT": 0.3,
    "RESIZING": 0.2,
    "REQUEUED": 1.0,
    "REQUEUE_HOLD": 0.6,
    "REQUEUE_FED": 0.2,
    "RESV_DEL_HOLD": 0.2,
}
#: Live states that mean "has resources, still running".
_STARTED_LIVE = frozenset(
    {
        "RUNNING",
        "COMPLETING",
        "CONFIGURING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESIZING",
    }
)
#: Final states of jobs that ended without ever starting.
_NEVER_STARTED = frozenset({"DEADLINE", "REVOKED"})

_NAME_NUMBER = re.compile(r"^(.*?)(\d+)$")

# --------------------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    """``now`` as a UTC-aware datetime in whole seconds (the current time if None)."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def _rng(seed: int | str, purpose: str) -> random.Random:
    """An independent stream per purpose, so adding users does not change nodes."""
    return random.Random(f"clockwork-datagen:{seed}:{purpose}")


def _uid(username: str) -> int:
    """A stable Unix uid for a username (root is 0)."""
    if username == "root":
        return 0
    return 100_000 + zlib.crc32(username.encode()) % 900_000


def compress_hostlist(names: Iterable[str]) -> str:
    """The Slurm hostlist expression of ``names`` (``cn-a[001-003,007]``).

    The inverse of :func:`clockwork_core.hostlist.expand` for the names Slurm uses.
    """
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    for name in names:
        match = _NAME_NUMBER.match(name)
        if match is None:
            plain.append(name)
            continue
        digits = match.group(2)
        groups.setdefault((match.group(1), len(digits)), []).append(int(digits))
    parts = list(plain)
    for (prefix, width), numbers in groups.items():
        numbers = sorted(set(numbers))
        if len(numbers) == 1:
            parts.append(f"{prefix}{numbers[0]:0{width}d}")
            continue
        ranges: list[str] = []
        lo = prev = numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            ranges.append(f"{lo:0{width}d}" if lo == prev else f"{lo:0{width}d}-{prev:0{width}d}")
            if n is not None:
                lo = prev = n
        parts.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join(parts)


# --------------------------------------------------------------------------- clusters


def _generic_cluster(name: str, seed: int | str) -> dict[str, Any]:
    """A cluster the config names but the built-in table does not know."""
    rng = _rng(seed, f"cluster:{name}")
    return {
        "display_name": name,
        "timezone": "UTC",
        "style": "generic",
        "weight": 1.5,
        "job_id_start": 1000,
        "accounts": ["default", "proj-ml", "proj-bio"],
        "qos": ["normal"],
        "node_groups": _node_groups(f"""
node[001-{rng.randint(16, 32):03d}]  32   128000   -       batch,long     x86_64,avx2
gpu[01-{rng.randint(4, 8):02d}]      48   512000   l40s:4  gpu            x86_64,l40s
hgx[01-{rng.randint(2, 4):02d}]      112  2000000  h100:8  gpu,gpu-long   x86_64,hopper,nvlink
"""),
    }


def cluster_spec(name: str, seed: int | str = 0) -> dict[str, Any]:
    """The generated description of cluster ``name`` (a fresh copy)."""
    spec = copy.deepcopy(_CLUSTERS[name]) if name in _CLUSTERS else _generic_cluster(name, seed)
    spec["name"] = name
    return spec


def generate_clusters(seed: int | str, names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """mila, narval and beluga, then any other cluster in ``names`` (the config's).

    Each dict holds ``name``, ``display_name``, ``timezone``, ``style`` (how its
    usernames and paths look), ``accounts``, ``qos`` and ``node_groups``.
    """
    ordered = list(_CLUSTERS)
    ordered += [n for n in dict.fromkeys(names) if n not in _CLUSTERS]
    return [cluster_spec(name, seed) for name in ordered]


# --------------------------------------------------------------------------- users


def generate_users(
    n_users: int,
    clusters: Iterable[str | dict[str, Any]],
    seed: int | str,
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """User records as stored in the ``users`` collection.

    The first three are the demo logins (admin@, staff@, student@example.org) with
    accounts on every cluster; the others are ``userNNN@example.org``, some
    disabled, a few admin or staff, some without an account on some clusters, a
    few with a different username on the DRAC clusters.
    """
    now = _now(now)
    rng = _rng(seed, "users")
    specs = [c if isinstance(c, dict) else cluster_spec(c, seed) for c in clusters]
    users: list[dict[str, Any]] = []
    for index in range(1, n_users + 1):
        demo = DEMO_USERS[index - 1] if index <= len(DEMO_USERS) else None
        if demo:
            stem, display_name, roles, username = demo
            status = "enabled"
        else:
            stem = username = f"user{index:03d}"
            display_name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
            draw = rng.random()
            roles = ["admin"] if draw < 0.02 else ["staff"] if draw < 0.06 else ["user"]
            status = "disabled" if rng.random() < 0.04 else "enabled"
        drac_alias = demo is None and rng.random() < 0.2
        accounts: dict[str, str] = {}
        for spec in specs:
            has = {"mila": 0.85, "drac": 0.55}.get(spec["style"], 0.6)
            if demo is None and rng.random() >= has:
                continue
            accounts[spec["name"]] = (
                f"cc{index:03d}" if spec["style"] == "drac" and drac_alias else username
            )
        created = now - timedelta(seconds=rng.randint(30 * 86400, 900 * 86400))
        users.append(
            {
                "email": f"{stem}@{EMAIL_DOMAIN}",
                "display_name": display_name,
                "status": status,
                "roles": list(roles),
                "cluster_accounts": accounts,
                "account_keys": [f"{c}/{u}" for c, u in accounts.items()],
                "settings": {},
                "created_at": created,
            }
        )
    return users


# --------------------------------------------------------------------------- nodes

_NODE_STATE_NAMES = (
    "idle",
    "mixed",
    "allocated",
    "down",
    "drained",
    "draining",
    "reserved",
    "maint",
)
_NODE_STATE_CUM = tuple(itertools.accumulate((25, 30, 25, 5, 7, 4, 2, 2)))


def generate_nodes(
    clusters: Iterable[str | dict[str, Any]],
    seed: int | str,
    *,
    now: datetime | None = None,
) -> Iterator[Node]:
    """Every node of every cluster: GPU and CPU nodes in every common state.

    Down and drained nodes carry reasons with quotes, colons, pipes and non-ASCII.
    """
    now = _now(now)
    rng = _rng(seed, "nodes")
    for cluster in clusters:
        spec = cluster if isinstance(cluster, dict) else cluster_spec(cluster, seed)
        for group in spec["node_groups"]:
            width = group["width"]
            for number in range(group["first"], group["first"] + group["count"]):
                yield _node(rng, spec["name"], f"{group['prefix']}{number:0{width}d}", group, now)


def _node(
    rng: random.Random, cluster: str, name: str, group: dict[str, Any], now: datetime
) -> Node:
    state = rng.choices(_NODE_STATE_NAMES, cum_weights=_NODE_STATE_CUM)[0]
    cpus, mem, gpus = group["cpus"], group["mem_mb"], group["gpus"]
    if state in ("allocated",):
        share = 1.0
    elif state in ("mixed", "draining"):
        share = rng.uniform(0.1, 0.9)
    elif state == "reserved":
        share = rng.choice((0.0, 1.0))
    else:
        share = 0.0
    alloc_cpus = round(cpus * share) if share < 1 else cpus
    if state in ("mixed", "draining"):
        alloc_cpus = min(max(alloc_cpus, 1), cpus - 1)
    flags: list[str] = []
    reason = reason_time = None
    if state == "down":
        flags = ["NOT_RESPONDING"] if rng.random() < 0.5 else []
    elif state in ("drained", "draining"):
        flags = ["DRAIN"]
    elif state == "maint":
        flags = ["MAINTENANCE", "RESERVED"]
    elif state == "reserved":
        flags = ["RESERVED"]
    if state in ("down", "drained", "draining", "maint"):
        reason = rng.choice(_NODE_REASONS)
        reason_time = now - timedelta(seconds=rng.randint(60, 20 * 86400))
    busy = alloc_cpus > 0
    return Node(
        cluster_name=cluster,
        name=name,
        state=state,
        state_flags=flags,
        reason=reason,
        reason_time=reason_time,
        partitions=list(group["partitions"]),
        cpus=cpus,
        alloc_cpus=alloc_cpus,
        real_memory_mb=mem,
        alloc_memory_mb=round(mem * alloc_cpus / cpus * rng.uniform(0.3, 1.0)) if busy else 0,
        gres=f"gpu:{group['gpu_type']}:{gpus}(S:0-1)" if gpus else None,
        gpu_type=group["gpu_type"],
        num_gpus=gpus,
        alloc_gpus=(gpus if state == "allocated" else rng.randint(0, gpus)) if busy and gpus else 0,
        features=list(group["features"]),
        cpu_load=round(alloc_cpus * rng.uniform(0.2, 1.05), 2) if state != "down" else None,
        last_busy=now if busy else now - timedelta(seconds=rng.randint(60, 5 * 86400)),
    )


# --------------------------------------------------------------------------- gpus


def generate_gpus() -> list[dict[str, Any]]:
    """GPU models and their specs, for the ``gpus`` collection (every node type is here)."""
    return [_gpu_record(line) for line in _GPU_TABLE.strip().splitlines()]


# --------------------------------------------------------------------------- jobs


@dataclass(slots=True)
class _Pool:
    """Nodes of one cluster that look alike (same GPUs, CPUs, memory, partitions)."""

    names: list[str]
    up: list[str]
    cpus: int
    mem_mb: int
    gpu_type: str | None
    gpus: int
    partitions: list[str]


@dataclass(slots=True)
class _Submitter:
    username: str
    gpu_share: float
    account: str
    workdir: str
    habits: tuple[str, ...]
    array_share: float


@dataclass(slots=True)
class _Cluster:
    name: str
    spec: dict[str, Any]
    next_id: int
    cpu_pools: list[_Pool] = field(default_factory=list)
    gpu_pools: list[_Pool] = field(default_factory=list)
    cpu_cum: list[int] = field(default_factory=list)
    gpu_cum: list[int] = field(default_factory=list)
    submitters: list[_Submitter] = field(default_factory=list)
    submitter_cum: list[float] = field(default_factory=list)
    strangers: list[_Submitter] = field(default_factory=list)


def _workdir(style: str, username: str, account: str, rng: random.Random) -> str:
    project = rng.choice(_PROJECTS)
    if style == "mila":
        base = rng.choice(("/home/mila", "/network/scratch"))
        return f"{base}/{username[0]}/{username}/{project}"
    if style == "drac":
        return rng.choice(
            (
                f"/home/{username}/{project}",
                f"/scratch/{username}/{project}",
                f"/project/{account}/{username}/{project}",
            )
        )
    return f"/home/{username}/{project}"


def _submitter(rng: random.Random, spec: dict[str, Any], username: str) -> _Submitter:
    account = rng.choice(spec["accounts"])
    return _Submitter(
        username=username,
        gpu_share=rng.choice((0.1, 0.4, 0.7, 0.9, 0.95)),
        account=account,
        workdir=_workdir(spec["style"], username, account, rng),
        habits=tuple(rng.sample(_JOB_NAMES, 3)),
        array_share=rng.choice((0.0, 0.0, 0.005, 0.02, 0.05)),
    )


def _plan_clusters(
    users: list[dict[str, Any]], nodes: Iterable[Node], seed: int | str
) -> list[_Cluster]:
    """Group the nodes into pools and the users into submitters, per cluster."""
    rng = _rng(seed, "plan")
    by_cluster: dict[str, dict[tuple[Any, ...], list[Node]]] = {}
    for node in nodes:
        key = (
            node.gpu_type,
            node.num_gpus or 0,
            node.cpus,
            node.real_memory_mb,
            tuple(node.partitions),
        )
        by_cluster.setdefault(node.cluster_name, {}).setdefault(key, []).append(node)
    plans: list[_Cluster] = []
    for name, groups in by_cluster.items():
        spec = cluster_spec(name, seed)
        plan = _Cluster(name=name, spec=spec, next_id=spec["job_id_start"])
        for (gpu_type, gpus, cpus, mem, partitions), members in groups.items():
            pool = _Pool(
                names=sorted(n.name for n in members),
                up=sorted(n.name for n in members if n.state not in ("down", "drained", "maint")),
                cpus=cpus or 1,
                mem_mb=mem or 1000,
                gpu_type=gpu_type,
                gpus=gpus,
                partitions=list(partitions) or ["default"],
            )
            if not pool.up:
                pool.up = pool.names
            pools, cum = (plan.gpu_pools, plan.gpu_cum) if gpus else (plan.cpu_pools, plan.cpu_cum)
            pools.append(pool)
            cum.append((cum[-1] if cum else 0) + len(pool.names))
        total = 0.0
        for user in users:
            username = user.get("cluster_accounts", {}).get(name)
            if not username:
                continue
            demo = user["email"].split("@")[0] in {d[0] for d in DEMO_USERS}
            total += 6.0 if demo else min(rng.paretovariate(1.1), 40.0)
            plan.submitters.append(_submitter(rng, spec, username))
            plan.submitter_cum.append(total)
        plan.strangers = [_submitter(rng, spec, f"ghost{i:02d}") for i in range(1, 13)]
        plan.strangers.append(_submitter(rng, spec, "root"))
        plans.append(plan)
    return plans


@dataclass(slots=True)
class _Shape:
    """What one submission asks for (shared by the tasks of an array)."""

    pool: _Pool
    partition: str
    num_nodes: int
    cpus: int
    mem_mb: int
    gpus: int
    typed_request: bool
    billing: int

    def tres(self, allocated: bool) -> dict[str, Any]:
        tres: dict[str, Any] = {
            "cpu": self.cpus,
            "mem": self.mem_mb,
            "node": self.num_nodes,
            "billing": self.billing,
        }
        if self.gpus:
            tres["gres/gpu"] = self.gpus
            if allocated or self.typed_request:
                tres[f"gres/gpu:{self.pool.gpu_type}"] = self.gpus
        return tres


def _shape(rng: random.Random, plan: _Cluster, gpu: bool) -> _Shape:
    rnd = rng.random
    if gpu and plan.gpu_pools:
        pool = plan.gpu_pools[bisect.bisect_right(plan.gpu_cum, rnd() * plan.gpu_cum[-1])]
    elif plan.cpu_pools:
        pool = plan.cpu_pools[bisect.bisect_right(plan.cpu_cum, rnd() * plan.cpu_cum[-1])]
    else:
        pool = plan.gpu_pools[bisect.bisect_right(plan.gpu_cum, rnd() * plan.gpu_cum[-1])]
    draw = rnd()
    num_nodes = 1 if draw < 0.9 else 2 if draw < 0.96 else 4 if draw < 0.99 else 8
    num_nodes = min(num_nodes, len(pool.names))
    if pool.gpus:
        gpn = min(rng.choice((1, 1, 1, 1, 2, 2, 4, pool.gpus)), pool.gpus)
        cpn = min(gpn * rng.choice((2, 4, 4, 6, 8)), pool.cpus)
    else:
        gpn = 0
        cpn = min(rng.choice((1, 1, 2, 4, 4, 8, 16, 32, pool.cpus)), pool.cpus)
    mem = min(cpn * rng.choice((2000, 4000, 4000, 8000, 16000)), pool.mem_mb)
    return _Shape(
        pool=pool,
        partition=rng.choice(pool.partitions),
        num_nodes=num_nodes,
        cpus=cpn * num_nodes,
        mem_mb=mem * num_nodes,
        gpus=gpn * num_nodes,
        typed_request=rnd() < 0.6,
        billing=(cpn + 4 * gpn) * num_nodes,
    )


def _pick_state(rng: random.Random, live: bool) -> str:
    names, cum = (_LIVE_NAMES, _LIVE_CUM) if live else (_HIST_NAMES, _HIST_CUM)
    return names[bisect.bisect_right(cum, rng.random() * cum[-1])]


_HIST_NAMES = tuple(_HIST_WEIGHTS)
_HIST_CUM = tuple(itertools.accumulate(_HIST_WEIGHTS.values()))
_LIVE_NAMES = tuple(_LIVE_WEIGHTS)
_LIVE_CUM = tuple(itertools.accumulate(_LIVE_WEIGHTS.values()))

_BATCH_STEP: dict[str, tuple[str, int | None, int | None]] = {
    "COMPLETED": ("COMPLETED", 0, 0),
    "CANCELLED": ("CANCELLED", 0, 15),
    "TIMEOUT": ("CANCELLED", 0, 15),
    "PREEMPTED": ("CANCELLED", 0, 15),
    "OUT_OF_MEMORY": ("OUT_OF_MEMORY", 0, 125),
    "NODE_FAIL": ("NODE_FAIL", 0, 0),
    "SUSPENDED": ("SUSPENDED", None, None),
    "STOPPED": ("SUSPENDED", None, None),
    "COMPLETING": ("COMPLETED", 0, 0),
    "STAGE_OUT": ("COMPLETED", 0, 0),
}


def _steps(
    rng: random.Random, state: str, exit_code: int | None, interactive: bool
) -> list[dict[str, Any]]:
    """The step summaries sacct shows for a job that started."""
    if state in ("BOOT_FAIL", "CONFIGURING"):
        return []
    final = state in FINAL_STATES
    if state in ("FAILED", "SPECIAL_EXIT"):
        main = ("FAILED", exit_code, 0)
    else:
        main = _BATCH_STEP.get(state, ("RUNNING", None, None))
    extern = ("COMPLETED", 0, 0) if final else ("RUNNING", None, None)
    if state == "NODE_FAIL":
        extern = ("CANCELLED", 0, 9)
    first = ("interactive", "interactive") if interactive else ("batch", "batch")
    steps = [
        {
            "step_id": first[0],
            "name": first[1],
            "state": main[0],
            "exit_code": main[1],
            "signal": main[2],
        },
        {
            "step_id": "extern",
            "name": "extern",
            "state": extern[0],
            "exit_code": extern[1],
            "signal": extern[2],
        },
    ]
    if not interactive and rng.random() < 0.3:
        count = rng.randint(1, 3)
        for index in range(count):
            last = index == count - 1
            step_state = main if last else ("COMPLETED", 0, 0)
            steps.append(
                {
                    "step_id": str(index),
                    "name": rng.choice(("python", "torchrun", "hostname", "srun")),
                    "state": step_state[0],
                    "exit_code": step_state[1],
                    "signal": step_state[2],
                }
            )
    return steps


def _limit_at_least(minutes: float) -> int:
    for limit in _TIME_LIMITS:
        if limit >= minutes:
            return limit
    return int(minutes) + 60


class _JobFactory:
    """Turns (submission, state) draws into Job records; holds the streams."""

    __slots__ = ("hist_end", "hist_start", "now", "rng")

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.hist_end = now - timedelta(days=1)
        self.hist_start = now - timedelta(days=HISTORY_DAYS)

    def job(
        self,
        plan: _Cluster,
        who: _Submitter,
        shape: _Shape,
        *,
        job_id: int,
        state: str,
        submit: datetime,
        time_limit: int,
        name: str,
        interactive: bool,
        comment: str | None,
        qos: str,
        live: bool,
        array: tuple[int, int] | None = None,
        het: tuple[int, int] | None = None,
        same_as: Job | None = None,
    ) -> Job:
        """One job; ``same_as`` (a het job's first component) fixes its times and exit."""
        rng = self.rng
        rnd = rng.random
        now = self.now
        started = state in _STARTED_LIVE or (state in FINAL_STATES and state not in _NEVER_STARTED)
        if state == "CANCELLED" and rnd() < 0.3:
            started = False
        if same_as is not None:
            started = same_as.start_time is not None
        start = end = None
        exit_code = signal = cancelled_by = None
        horizon = (now - submit).total_seconds()
        if same_as is not None:
            start, end, time_limit = same_as.start_time, same_as.end_time, same_as.time_limit or 1
        elif started:
            wait = rng.expovariate(1 / 600) if rnd() < 0.85 else rng.expovariate(1 / 14400)
            wait = min(wait, horizon * rnd())
            start = submit + timedelta(seconds=int(wait))
            if state in FINAL_STATES:
                room = (now - start).total_seconds()
                limit_s = time_limit * 60
                if state == "TIMEOUT":
                    duration = limit_s + rng.randint(0, 90)
                elif state == "BOOT_FAIL":
                    duration = rng.randint(0, 120)
                elif state == "FAILED":
                    duration = limit_s * rnd() ** 3
                else:
                    duration = limit_s * rnd() ** 1.5
                if duration > room:
                    duration = room * rnd()
                    if state == "TIMEOUT":
                        # it could not have hit its limit yet: it was a shorter one
                        time_limit = max(1, int(duration // 60))
                end = start + timedelta(seconds=int(duration))
            else:
                elapsed = (now - start).total_seconds() / 60
                if elapsed >= time_limit:
                    time_limit = _limit_at_least(elapsed + 1)
        elif state in FINAL_STATES:
            end = submit + timedelta(seconds=int(min(rng.expovariate(1 / 1800), horizon)))
        if same_as is not None:
            exit_code, signal = same_as.exit_code, same_as.signal
            cancelled_by = same_as.cancelled_by
        elif state in FINAL_STATES:
            exit_code, signal = 0, 0
            if state in ("FAILED", "SPECIAL_EXIT", "BOOT_FAIL"):
                exit_code = rng.choice(_FAIL_CODES)
            elif state == "CANCELLED":
                signal = 15 if started else 0
                draw = rnd()
                cancelled_by = (
                    _uid(who.username) if draw < 0.8 else 0 if draw < 0.9 else _uid("ops")
                )
            elif state == "PREEMPTED":
                signal = 15
            elif state == "OUT_OF_MEMORY":
                signal = 125
        nodes = None
        if started:
            hosts = shape.pool.up if live else shape.pool.names
            if shape.num_nodes == 1:
                nodes = hosts[int(rnd() * len(hosts))]
            else:
                nodes = compress_hostlist(rng.sample(hosts, min(shape.num_nodes, len(hosts))))
        finished_run = started and end is not None
        gpu_type = shape.pool.gpu_type if shape.gpus and (started or shape.typed_request) else None
        return Job(
            cluster_name=plan.name,
            job_id=job_id,
            array_job_id=array[0] if array else None,
            array_task_id=array[1] if array else None,
            het_job_id=het[0] if het else None,
            het_job_offset=het[1] if het else None,
            name=name,
            username=who.username,
            account=(
                f"{who.account}_{'gpu' if shape.gpus else 'cpu'}"
                if plan.spec["style"] == "drac"
                else who.account
            ),
            partition=shape.partition,
            qos=qos,
            job_state=state,
            cancelled_by=cancelled_by,
            exit_code=exit_code,
            signal=signal,
            submit_time=submit,
            start_time=start,
            end_time=end,
            time_limit=time_limit,
            nodes=nodes,
            num_nodes=shape.num_nodes,
            num_cpus=shape.cpus,
            mem_mb=shape.mem_mb,
            num_gpus=shape.gpus,
            gpu_type=gpu_type,
            tres_requested=shape.tres(False),
            tres_allocated=shape.tres(True) if started else {},
            working_directory=who.workdir,
            comment=comment,
            steps=_steps(rng, state, exit_code, interactive) if started else [],
            cpu_efficiency=round(rng.betavariate(2, 3), 4) if finished_run else None,
            mem_efficiency=(
                (
                    round(rng.uniform(0.9, 1.0), 4)
                    if state == "OUT_OF_MEMORY"
                    else round(rng.betavariate(2, 4), 4)
                )
                if finished_run
                else None
            ),
        )


def _forced_slots(states: list[str], first: int, count: int) -> dict[int, str]:
    """Positions spread over a window where a state is forced, so each one shows up."""
    if count <= 0 or not states:
        return {}
    stride = max(1, count // (len(states) + 1))
    return {
        first + stride * (i + 1) - 1: s for i, s in enumerate(states) if stride * (i + 1) <= count
    }


def generate_jobs(
    n_jobs: int,
    users: list[dict[str, Any]],
    nodes: Iterable[Node],
    seed: int | str,
    now: datetime | None = None,
) -> Iterator[Job]:
    """Stream ``n_jobs`` jobs over the last 90 days on the clusters of ``nodes``.

    Jobs come out in submit order. Most completed; those of the last day are
    also running, pending, or in the rarer live states; every base Slurm state
    appears once ``n_jobs`` reaches a few hundred. Usernames are the users'
    cluster accounts, plus a few accounts unknown to Clockwork (``ghostNN``,
    ``root``). Memory stays bounded whatever ``n_jobs``.
    """
    now = _now(now)
    plans = _plan_clusters(users, nodes, seed)
    if not plans:
        raise ValueError("generate_jobs needs at least one node")
    return _jobs(n_jobs, plans, seed, now)


def _jobs(n_jobs: int, plans: list[_Cluster], seed: int | str, now: datetime) -> Iterator[Job]:
    rng = _rng(seed, "jobs")
    rnd = rng.random
    factory = _JobFactory(rng, now)
    cluster_cum = list(itertools.accumulate(p.spec["weight"] for p in plans))
    live_count = round(n_jobs * LIVE_FRACTION)
    hist_count = n_jobs - live_count
    hist_span = (factory.hist_end - factory.hist_start).total_seconds()
    live_span = (now - factory.hist_end).total_seconds()
    forced = _forced_slots(sorted(FINAL_STATES), 0, hist_count)
    forced.update(_forced_slots(sorted(JOB_STATES - FINAL_STATES), hist_count, live_count))
    forced_keys = sorted(forced)
    next_forced = 0
    k = 0
    while k < n_jobs:
        live = k >= hist_count
        if live:
            offset = live_span * (k - hist_count + rnd()) / live_count
            submit = factory.hist_end + timedelta(seconds=int(offset))
        else:
            offset = hist_span * (k + rnd()) / hist_count
            submit = factory.hist_start + timedelta(seconds=int(offset))
        plan = plans[bisect.bisect_right(cluster_cum, rnd() * cluster_cum[-1])]
        if plan.submitters and rnd() >= 0.03:
            cum = plan.submitter_cum
            who = plan.submitters[bisect.bisect_right(cum, rnd() * cum[-1])]
        else:
            who = plan.strangers[int(rnd() * len(plan.strangers))]
        force = None
        room = n_jobs - k  # an array or het job must not jump over a forced slot
        if next_forced < len(forced_keys):
            if forced_keys[next_forced] <= k:
                force = forced[forced_keys[next_forced]]
                next_forced += 1
            else:
                room = min(room, forced_keys[next_forced] - k)
        draw = rnd()
        kind = "single"
        if force is None:
            if draw < who.array_share:
                kind = "array"
            elif draw > 0.993:
                kind = "het"
        interactive = kind == "single" and rnd() < 0.08
        if interactive:
            name = rng.choice(_INTERACTIVE_NAMES)
        elif rnd() < 0.06:
            name = rng.choice(ODD_NAMES)
        else:
            name = rng.choice(who.habits)
            if rnd() < 0.3:
                name = f"{name}-{rng.randint(1, 999)}"
        comment = rng.choice(_COMMENTS) if rnd() < 0.12 else None
        qos = rng.choice(plan.spec["qos"])
        time_limit = _TIME_LIMITS[bisect.bisect_right(_TIME_LIMIT_CUM, rnd() * _TIME_LIMIT_CUM[-1])]
        if interactive:
            time_limit = min(time_limit, 720)
        common = {
            "submit": submit,
            "name": name,
            "comment": comment,
            "qos": qos,
            "live": live,
            "interactive": interactive,
        }
        base = plan.next_id
        if kind == "array":
            size = rng.choice((1, 2, 3, 4, 5, 8, 10, 10, 16, 20, 32, 50, 100))
            size = max(1, min(size, room))
            first_task = rng.choice((0, 0, 1))
            shape = _shape(rng, plan, rnd() < who.gpu_share)
            for i in range(size):
                yield factory.job(
                    plan,
                    who,
                    shape,
                    job_id=base + i,
                    state=_pick_state(rng, live),
                    time_limit=time_limit,
                    array=(base, first_task + i),
                    **common,
                )
        elif kind == "het":
            size = max(1, min(rng.choice((2, 2, 3)), room))
            state = _pick_state(rng, live)
            leader = None
            for i in range(size):
                shape = _shape(rng, plan, i > 0 and rnd() < 0.7)
                component = factory.job(
                    plan,
                    who,
                    shape,
                    job_id=base + i,
                    state=state,
                    time_limit=time_limit,
                    het=(base, i),
                    same_as=leader,
                    **common,
                )
                leader = leader or component
                yield component
        else:
            size = 1
            shape = _shape(rng, plan, rnd() < who.gpu_share)
            yield factory.job(
                plan,
                who,
                shape,
                job_id=base,
                state=force or _pick_state(rng, live),
                time_limit=time_limit,
                **common,
            )
        plan.next_id = base + size + (rng.randint(1, 5) if rnd() < 0.05 else 0)
        k += size


# --------------------------------------------------------------------------- loading

#: Collections :func:`load_dataset` writes (and drops on ``replace=True``, except users).
DATASET_COLLECTIONS = ("jobs", "nodes", "gpus", "cluster_status")


def _insert(collection: Any, documents: list[dict[str, Any]]) -> tuple[int, int]:
    """Insert, skipping documents already there; (inserted, duplicates)."""
    if not documents:
        return 0, 0
    try:
        result = collection.insert_many(documents, ordered=False)
        return len(result.inserted_ids), 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        return int(exc.details.get("nInserted", 0)), len(errors)


def load_dataset(
    db: Database[Any],
    *,
    n_jobs: int,
    n_users: int,
    seed: int | str,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
    replace: bool = False,
    clusters: Iterable[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write a generated data set into ``db``; return what it holds.

    With ``replace=False`` a database whose ``jobs`` collection already holds
    data is left alone (``"reused": True``). ``replace=True`` drops the jobs,
    nodes, gpus and cluster_status collections and replaces the generated users
    (users created otherwise are kept). ``progress(jobs_done, n_jobs)`` is
    called after each batch. ``clusters`` adds the config's cluster names.
    """
    started = time.monotonic()
    ensure_indexes(db)
    if not replace and db.jobs.find_one({}, {"_id": 1}) is not None:
        return {
            "reused": True,
            "jobs": db.jobs.estimated_document_count(),
            "nodes": db.nodes.estimated_document_count(),
            "users": db.users.estimated_document_count(),
            "gpus": db.gpus.estimated_document_count(),
            "seconds": round(time.monotonic() - started, 3),
        }
    now = _now(now)
    cluster_specs = generate_clusters(seed, clusters)
    users = generate_users(n_users, cluster_specs, seed, now=now)
    if replace:
        for name in DATASET_COLLECTIONS:
            db.drop_collection(name)
        emails = [u["email"] for u in users]
        for i in range(0, len(emails), 1000):
            db.users.delete_many({"email": {"$in": emails[i : i + 1000]}})
        ensure_indexes(db)
    scrape_id = f"datagen-{seed}"
    user_of = {
        (cluster, username): user["email"]
        for user in users
        for cluster, username in user["cluster_accounts"].items()
    }
    duplicates = 0
    n_users_written, dup = _insert(db.users, [dict(u) for u in users])
    duplicates += dup
    nodes = list(generate_nodes(cluster_specs, seed, now=now))
    n_nodes, dup = _insert(
        db.nodes, [node_document(n, seen=now, scrape_id=scrape_id) for n in nodes]
    )
    duplicates += dup
    n_gpus, dup = _insert(db.gpus, generate_gpus())
    duplicates += dup

    per_cluster: dict[str, dict[str, int]] = {
        c["name"]: {"jobs": 0, "PENDING": 0, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0}
        for c in cluster_specs
    }
    n_written = 0
    done = 0
    batch: list[dict[str, Any]] = []
    for job in generate_jobs(n_jobs, users, nodes, seed, now=now):
        document = job_document(
            job,
            user=user_of.get((job.cluster_name, job.username)),
            seen=job.submit_time or now,
            scrape_id=scrape_id,
        )
        document["cw"]["last_seen"] = job.end_time or now
        batch.append(document)
        counts = per_cluster[job.cluster_name]
        counts["jobs"] += 1
        counts[state_bucket(job.job_state)] += 1
        if len(batch) >= batch_size:
            inserted, dup = _insert(db.jobs, batch)
            n_written, duplicates, done = n_written + inserted, duplicates + dup, done + len(batch)
            batch = []
            if progress is not None:
                progress(done, n_jobs)
    if batch:
        inserted, dup = _insert(db.jobs, batch)
        n_written, duplicates, done = n_written + inserted, duplicates + dup, done + len(batch)
        if progress is not None:
            progress(done, n_jobs)

    duration = round(time.monotonic() - started, 3)
    nodes_per_cluster: dict[str, int] = {}
    for node in nodes:
        nodes_per_cluster[node.cluster_name] = nodes_per_cluster.get(node.cluster_name, 0) + 1
    for name, counts in per_cluster.items():
        db.cluster_status.replace_one(
            {"cluster_name": name},
            {
                "cluster_name": name,
                "last_success": now,
                "last_error": None,
                "last_error_message": None,
                "duration_s": duration,
                "scrape_id": scrape_id,
                "counts": {**counts, "nodes": nodes_per_cluster.get(name, 0)},
            },
            upsert=True,
        )
    return {
        "reused": False,
        "jobs": n_written,
        "nodes": n_nodes,
        "users": n_users_written,
        "gpus": n_gpus,
        "clusters": [c["name"] for c in cluster_specs],
        "duplicates": duplicates,
        "seconds": round(time.monotonic() - started, 3),
    }
