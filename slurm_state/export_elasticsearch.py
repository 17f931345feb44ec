"""Optional sink: jobs into Elasticsearch, one index per cluster, idempotent re-sends.

On when ``scraper.elasticsearch_url`` (``ELASTICSEARCH_URL``) is set. Each job
is indexed under ``_id = "<cluster>-<job_id>"``, so sending a job again
replaces it instead of duplicating it. The scraper feeds it every batch of new
or changed jobs; a failure is reported (``ExportError``) and never stops the
scrape: MongoDB stays the source of truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from clockwork_core.schema import Job

DEFAULT_INDEX_PREFIX = "clockwork-jobs"


class ExportError(Exception):
    """The sink could not take the jobs (message without credentials)."""


def index_name(cluster_name: str, prefix: str = DEFAULT_INDEX_PREFIX) -> str:
    """The index of a cluster's jobs (Elasticsearch wants lower case)."""
    return f"{prefix}-{cluster_name}".lower()


def job_source(job: Job) -> dict[str, Any]:
    """A job as an Elasticsearch document: the schema's fields, times in ISO 8601."""
    doc = job.to_dict()
    for key, value in doc.items():
        if isinstance(value, datetime):
            doc[key] = value.isoformat()
    return doc


def job_actions(
    jobs: Iterable[Job], prefix: str = DEFAULT_INDEX_PREFIX
) -> Iterator[dict[str, Any]]:
    """Bulk ``index`` actions for ``helpers.streaming_bulk``."""
    for job in jobs:
        yield {
            "_op_type": "index",
            "_index": index_name(job.cluster_name, prefix),
            "_id": f"{job.cluster_name}-{job.job_id}",
            "_source": job_source(job),
        }


def redact_url(url: str) -> str:
    """The URL without user:password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ElasticsearchSink:
    """Sends jobs with the official client's bulk helper."""

    def __init__(
        self,
        url: str,
        *,
        index_prefix: str = DEFAULT_INDEX_PREFIX,
        timeout_s: float = 10.0,
        client: Any = None,
    ) -> None:
        self.url = url
        self.index_prefix = index_prefix
        if client is None:
            from elasticsearch import Elasticsearch

            client = Elasticsearch(
                url, request_timeout=timeout_s, max_retries=1, retry_on_timeout=False
            )
        self.client = client

    def send(self, jobs: list[Job]) -> int:
        """Index ``jobs``; return how many were accepted. Raises ExportError."""
        from elasticsearch import ApiError, TransportError, helpers

        ok = 0
        failed: list[str] = []
        try:
            for success, info in helpers.streaming_bulk(
                self.client,
                job_actions(jobs, self.index_prefix),
                chunk_size=500,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=2,
            ):
                if success:
                    ok += 1
                elif len(failed) < 5:
                    item = info.get("index", info)
                    failed.append(f"{item.get('_id')}: {item.get('error')}")
        except TransportError as exc:
            raise ExportError(
                f"elasticsearch at {redact_url(self.url)}: cannot connect ({type(exc).__name__})"
            ) from None
        except ApiError as exc:
            raise ExportError(
                f"elasticsearch at {redact_url(self.url)}: {exc.meta.status} {exc.message}"
            ) from None
        if failed:
            raise ExportError(
                f"elasticsearch at {redact_url(self.url)}: {len(jobs) - ok} job(s) rejected, "
                f"e.g. {'; '.join(failed)}"
            )
        return ok

    def close(self) -> None:
        self.client.close()
