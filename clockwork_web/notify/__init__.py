"""Notifications of job state changes: email, Slack, RabbitMQ, signed webhooks.

``channels`` sends one message; ``notifier`` turns the scraper's ``job_events``
outbox into deliveries, each sent once (see its docstring);
``python -m clockwork_web.notify [--once | --loop --every 10]`` runs it.
"""
