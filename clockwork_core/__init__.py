"""What every Clockwork component shares: configuration, the record schema, the database.

Nothing here imports Flask or talks to Slurm, so the scraper, the web app and the
scripts can all depend on it.
"""
