"""Front doors of the daemon: the Docker Engine API (api) and, later, the AMQP agent."""
