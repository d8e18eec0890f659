# The stack's RabbitMQ (docker-compose.dev.yml): Debian's rabbitmq-server on the seeded Debian
# base, no Docker Hub image. Its command, rabbitmq-init.sh, is bind-mounted by the compose file
# (with infra/amqp-accounts.sh): broker first, then the control plane's accounts.
# Build context: this folder (nothing is copied from it).
ARG BASE_IMAGE=127.0.0.1:5000/library/debian:bookworm-slim
FROM ${BASE_IMAGE}

# The package's postinst would start the broker: a policy-rc.d refuses it during the build.
# The Erlang cookie is made at the first start, in the volume.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d /var/lib/rabbitmq/mnesia \
        /var/lib/rabbitmq/.erlang.cookie

# The broker's own account, not root. Logs to standard output, as a container's should.
USER rabbitmq
WORKDIR /var/lib/rabbitmq
ENV HOME=/var/lib/rabbitmq RABBITMQ_LOGS=- RABBITMQ_SASL_LOGS=-
EXPOSE 5672
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
# What a rebuild leaves untagged is found by this label (tests/integration/test_dev_stack.py
# prunes it: docker image prune --filter label=wharf.dev-stack).
LABEL wharf.dev-stack=wharf-dev-rabbitmq
