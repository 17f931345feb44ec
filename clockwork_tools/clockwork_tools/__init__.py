"""clockwork_tools: the Python client and the ``clockwork`` command for Clockwork.

    import clockwork_tools as cw

    with cw.Client() as client:          # CLOCKWORK_URL and CLOCKWORK_TOKEN
        for job in client.iter_jobs(state="RUNNING"):
            print(job.cluster_name, job.job_id, job.name)

Everything public is importable from here; the ``_``-modules are private.
"""

from clockwork_tools._client import Client, current_job
from clockwork_tools._compat import ClockworkToolsBaseClient, ClockworkToolsClient
from clockwork_tools._exceptions import (
    AuthenticationError,
    BadRequestError,
    ClockworkError,
    ConfigurationError,
    ConflictError,
    HTTPStatusError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    Timeout,
    TransportError,
)
from clockwork_tools._models import (
    Cluster,
    FileInfo,
    Gpu,
    Job,
    JobRef,
    Node,
    Page,
    Submission,
    Token,
    Usage,
    User,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ClockworkError",
    "ClockworkToolsBaseClient",
    "ClockworkToolsClient",
    "Cluster",
    "ConfigurationError",
    "ConflictError",
    "FileInfo",
    "Gpu",
    "HTTPStatusError",
    "Job",
    "JobRef",
    "Node",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "Submission",
    "Timeout",
    "Token",
    "TransportError",
    "Usage",
    "User",
    "__version__",
    "current_job",
]
