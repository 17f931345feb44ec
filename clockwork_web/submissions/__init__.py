"""Job submission through Clockwork: validate a task, send it to a cluster as the
logged-in user (local sbatch, SSH or slurmrestd), follow it, cancel it, read its
output. ``task`` and ``service`` are plain Python; ``api``, ``proxy`` and
``views`` are the thin Flask layers; ``python -m clockwork_web.submissions``
retries unsent submissions and refreshes states.
"""
