"""The original Clockwork client's classes, so that existing scripts run unchanged.

Same class names, constructor arguments and method signatures as the original
``clockwork_tools.client``; the methods call the original paths
(``/api/v1/clusters/...``), which the server keeps as aliases, and return what
they returned: plain dicts and lists. Errors are the client's exception tree
(every one an ``Exception``, as the original raised). New code should use
:class:`clockwork_tools.Client`.
"""

from __future__ import annotations

import os
from typing import Any

from clockwork_tools._client import Client
from clockwork_tools._exceptions import ConfigurationError

__all__ = ["ClockworkToolsBaseClient", "ClockworkToolsClient"]


class ClockworkToolsBaseClient:
    """The original base client: explicit email, API key (a Clockwork token), host, port."""

    def __init__(
        self,
        email: str,
        clockwork_api_key: str,
        host: str = "clockwork.mila.quebec",
        port: int = 443,
    ) -> None:
        self.email = email
        self.clockwork_api_key = clockwork_api_key
        self.host = host
        self.port = port
        scheme = "https" if int(port) == 443 else "http"
        self.complete_base_address = f"{scheme}://{host}:{port}"
        # email + key is HTTP Basic, as before; the environment's token is not used
        self._client = Client(
            self.complete_base_address,
            email=email,
            api_key=clockwork_api_key,
            env={},
        )

    def _request(self, endpoint: str, params: dict, method: str = "GET") -> Any:
        path = "/" + endpoint.lstrip("/")
        clean = {k: v for k, v in params.items() if v is not None}
        if method == "GET":
            response = self._client.request("GET", path, params=clean)
        else:
            response = self._client.request(method, path, json=clean)
        return response.json() if response.content else None

    def jobs_list(
        self,
        username: str | None = None,
        relative_time: int | None = None,
        cluster_name: str | None = None,
        job_ids: str | list | None = None,
        **more: Any,
    ) -> list[dict[str, Any]]:
        """REST call to api/v1/clusters/jobs/list: the jobs you may see, as dicts."""
        if isinstance(job_ids, (list, tuple)):
            job_ids = ",".join(str(j) for j in job_ids)
        params = {
            "username": username,
            "relative_time": relative_time,
            "cluster_name": cluster_name,
            "job_id": job_ids,
            **more,
        }
        return self._request("api/v1/clusters/jobs/list", params)

    def jobs_one(
        self, job_id: str | None = None, cluster_name: str | None = None
    ) -> dict[str, Any]:
        """REST call to api/v1/clusters/jobs/one."""
        params = {"job_id": job_id, "cluster_name": cluster_name}
        return self._request("api/v1/clusters/jobs/one", params)

    def get_user_props(self, job_id: str, cluster_name: str) -> dict[str, Any]:
        """REST call to api/v1/clusters/jobs/user_props/get: your props on a job."""
        params = {"job_id": job_id, "cluster_name": cluster_name}
        return self._request("api/v1/clusters/jobs/user_props/get", params)

    def set_user_props(self, job_id: str, cluster_name: str, updates: dict) -> dict[str, Any]:
        """REST call to api/v1/clusters/jobs/user_props/set; returns the updated props."""
        params = {"job_id": job_id, "cluster_name": cluster_name, "updates": updates}
        return self._request("api/v1/clusters/jobs/user_props/set", params, method="PUT")

    def delete_user_props(self, job_id: str, cluster_name: str, keys: str | list) -> dict[str, Any]:
        """REST call to api/v1/clusters/jobs/user_props/delete; returns the remaining props."""
        params = {"job_id": job_id, "cluster_name": cluster_name, "keys": keys}
        return self._request("api/v1/clusters/jobs/user_props/delete", params, method="PUT")

    def jobs_user_dict_update(
        self,
        job_id: str | None = None,
        cluster_name: str | None = None,
        update_pairs: dict | None = None,
    ) -> dict[str, Any]:
        """The oldest name of :meth:`set_user_props`, kept for very old scripts."""
        return self.set_user_props(job_id, cluster_name, dict(update_pairs or {}))

    def nodes_list(self, cluster_name: str | None = None) -> list[dict[str, Any]]:
        """REST call to api/v1/clusters/nodes/list."""
        return self._request("api/v1/clusters/nodes/list", {"cluster_name": cluster_name})

    def nodes_one(
        self, node_name: str | None = None, cluster_name: str | None = None
    ) -> dict[str, Any]:
        """REST call to api/v1/clusters/nodes/one."""
        # the original server read ``name`` in some versions, ``node_name`` in others
        params = {"name": node_name, "node_name": node_name, "cluster_name": cluster_name}
        return self._request("api/v1/clusters/nodes/one", params)

    def close(self) -> None:
        self._client.close()


class ClockworkToolsClient(ClockworkToolsBaseClient):
    """The original user-facing client: credentials from arguments or the environment.

    Inside a Slurm job, ``jobs_one()`` and the props methods default to that
    job (``target_self``), from ``SLURM_JOB_ID`` and ``SLURM_CLUSTER_NAME``.
    """

    def __init__(
        self,
        email: str = "",
        clockwork_api_key: str = "",
        host: str = "clockwork.mila.quebec",
        port: int = 443,
    ) -> None:
        if not clockwork_api_key:
            clockwork_api_key = os.environ.get("CLOCKWORK_API_KEY", "")
            if not clockwork_api_key:
                raise ConfigurationError(
                    "Invalid clockwork_api_key argument or missing from environment."
                )
        if not email:
            email = os.environ.get("CLOCKWORK_EMAIL", "")
            if not email:
                raise ConfigurationError("Invalid email argument or missing from environment.")
        super().__init__(email=email, clockwork_api_key=clockwork_api_key, host=host, port=port)
        self.this_specific_slurm_job_params: dict[str, Any] = {}
        self._read_slurm_values_if_applicable()

    def _read_slurm_values_if_applicable(self) -> None:
        """Remember this Slurm job's id, cluster and node, when running inside one."""
        job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_JOBID")
        self.this_specific_slurm_job_params["job_id"] = job_id
        if job_id:
            self.this_specific_slurm_job_params["job_tmpdir"] = os.environ.get("SLURM_TMPDIR")
            self.this_specific_slurm_job_params["node_name"] = os.uname().nodename.split(".")[0]
            self.this_specific_slurm_job_params["cluster_name"] = os.environ.get(
                "SLURM_CLUSTER_NAME"
            )

    def _create_params_for_request(self, target_self: bool, **kwargs: Any) -> dict[str, Any]:
        params = {}
        for key, value in kwargs.items():
            if value is not None:
                params[key] = value
            elif target_self and self.this_specific_slurm_job_params.get(key) is not None:
                params[key] = self.this_specific_slurm_job_params[key]
        return params

    def jobs_list(
        self,
        username: str | None = None,
        relative_time: int | None = None,
        cluster_name: str | None = None,
        job_ids: str | list | None = None,
        **more: Any,
    ) -> list[dict[str, Any]]:
        return super().jobs_list(
            username=username,
            relative_time=relative_time,
            cluster_name=cluster_name,
            job_ids=job_ids,
            **more,
        )

    def jobs_one(
        self,
        job_id: str | None = None,
        cluster_name: str | None = None,
        target_self: bool = True,
    ) -> dict[str, Any]:
        params = self._create_params_for_request(
            target_self, job_id=job_id, cluster_name=cluster_name
        )
        return super().jobs_one(**params)

    def get_user_props(
        self,
        job_id: str | None = None,
        cluster_name: str | None = None,
        target_self: bool = True,
    ) -> dict[str, Any]:
        params = self._create_params_for_request(
            target_self, job_id=job_id, cluster_name=cluster_name
        )
        return super().get_user_props(**params)

    def set_user_props(
        self,
        job_id: str | None = None,
        cluster_name: str | None = None,
        updates: dict | None = None,
        target_self: bool = True,
    ) -> dict[str, Any]:
        params = self._create_params_for_request(
            target_self, job_id=job_id, cluster_name=cluster_name
        )
        return super().set_user_props(updates=dict(updates or {}), **params)

    def delete_user_props(
        self,
        job_id: str | None = None,
        cluster_name: str | None = None,
        keys: str | list | None = None,
        target_self: bool = True,
    ) -> dict[str, Any]:
        params = self._create_params_for_request(
            target_self, job_id=job_id, cluster_name=cluster_name
        )
        return super().delete_user_props(keys=keys if keys is not None else [], **params)

    def nodes_list(self, cluster_name: str | None = None) -> list[dict[str, Any]]:
        return super().nodes_list(cluster_name=cluster_name)

    def nodes_one(
        self,
        node_name: str | None = None,
        cluster_name: str | None = None,
        target_self: bool = True,
    ) -> dict[str, Any]:
        params = self._create_params_for_request(
            target_self, node_name=node_name, cluster_name=cluster_name
        )
        return super().nodes_one(**params)
