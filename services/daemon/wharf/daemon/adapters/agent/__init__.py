"""The control-plane agent: commands from RabbitMQ, executed through the same Engine."""
