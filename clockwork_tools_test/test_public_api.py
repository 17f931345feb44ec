"""The public namespace is a promise: this pins it (add names deliberately)."""

from __future__ import annotations

import inspect

import clockwork_tools as cw

EXPECTED = [
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

CLIENT_METHODS = {
    "jobs", "iter_jobs", "job", "job_props", "set_job_props", "delete_job_props",
    "nodes", "iter_nodes", "node", "gpus", "clusters", "me", "usage", "submit",
    "cancel", "adopt", "submissions", "iter_submissions", "submission", "files",
    "read_file", "download", "current_job", "token_check", "request", "close",
    "tokens", "create_token", "revoke_token",
}  # fmt: skip

COMPAT_METHODS = {
    "jobs_list", "jobs_one", "get_user_props", "set_user_props", "delete_user_props",
    "nodes_list", "nodes_one",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert cw.__all__ == EXPECTED
    for name in cw.__all__:
        assert hasattr(cw, name), name


def test_every_public_name_is_documented() -> None:
    for name in cw.__all__:
        obj = getattr(cw, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_client_has_a_method_per_endpoint() -> None:
    public = {
        n for n, _ in inspect.getmembers(cw.Client, inspect.isfunction) if not n.startswith("_")
    }
    assert public >= CLIENT_METHODS


def test_options_are_keyword_only() -> None:
    params = inspect.signature(cw.Client).parameters
    assert [p for p in params if params[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD] == [
        "url",
        "token",
    ]
    assert params["timeout"].kind is inspect.Parameter.KEYWORD_ONLY


def test_original_client_names_and_signatures() -> None:
    for cls in (cw.ClockworkToolsBaseClient, cw.ClockworkToolsClient):
        assert set(dir(cls)) >= COMPAT_METHODS
    sig = inspect.signature(cw.ClockworkToolsClient)
    assert list(sig.parameters) == ["email", "clockwork_api_key", "host", "port"]
    assert list(inspect.signature(cw.ClockworkToolsClient.jobs_list).parameters)[:4] == [
        "self",
        "username",
        "relative_time",
        "cluster_name",
    ]
    assert list(inspect.signature(cw.ClockworkToolsClient.set_user_props).parameters)[:4] == [
        "self",
        "job_id",
        "cluster_name",
        "updates",
    ]


def test_exception_tree() -> None:
    leaves = [
        cw.BadRequestError, cw.AuthenticationError, cw.PermissionDeniedError,
        cw.NotFoundError, cw.ConflictError, cw.RateLimitError, cw.ServerError,
    ]  # fmt: skip
    for leaf in leaves:
        assert issubclass(leaf, cw.HTTPStatusError)
    assert issubclass(cw.HTTPStatusError, cw.ClockworkError)
    assert issubclass(cw.Timeout, cw.TransportError)
    assert issubclass(cw.TransportError, cw.ClockworkError)
    assert issubclass(cw.ConfigurationError, cw.ClockworkError)
    assert issubclass(cw.ClockworkError, Exception)


def test_typed_marker_is_shipped() -> None:
    from importlib.resources import files

    assert files("clockwork_tools").joinpath("py.typed").is_file()
