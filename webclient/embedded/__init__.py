"""Local services for the one-command run and the tests: a Synapse and a Redis without root."""
