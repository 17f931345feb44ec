"""Jobs: the query builder and the services behind the API and the pages."""
