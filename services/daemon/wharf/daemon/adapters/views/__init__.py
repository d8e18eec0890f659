"""Docker JSON views (list entries, inspect documents) that the API and the agent both serve."""
