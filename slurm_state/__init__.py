"""slurm_state: Clockwork's scraper. Fetch Slurm reports, parse them into the one
schema (:mod:`slurm_state.parsers`), anonymize (:mod:`slurm_state.anonymize`),
store them in MongoDB, export metrics. ``python -m slurm_state --help``.
"""
